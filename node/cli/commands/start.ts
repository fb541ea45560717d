import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { Command } from "commander";
import { openLocalCore } from "../../../src/runtime/local-core.js";
import { dataPaths, resolveDataDir } from "../../../src/runtime/data-dir.js";
import { LocalTransportAdapter } from "../../../src/transport/local-adapter.js";
import { startControlServer } from "../../control/control-server.js";
import { EXIT } from "../exit-codes.js";
import type { AccessOptions } from "../runtime-access.js";

/** `coderclaw start`: run a node in the foreground until SIGINT/SIGTERM. */
export function startCommand(setExit: (code: number) => void): Command {
  return new Command("start")
    .description("run a node in the foreground; other commands reach it through its control socket")
    .option("--max-concurrent <n>", "tasks executing at once", (v) => Number(v))
    .action(async (opts: { maxConcurrent?: number }, cmd: Command) => {
      const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
      const paths = dataPaths(dataDir);
      const core = await openLocalCore({ dataDir, ...(opts.maxConcurrent !== undefined && { maxConcurrentTasks: opts.maxConcurrent }) });
      const adapter = new LocalTransportAdapter(core);
      const token = randomBytes(32).toString("hex");
      writeFileSync(paths.controlToken, token + "\n", { mode: 0o600 });
      const control = await startControlServer({ socketPath: paths.controlSocket, token, adapter });
      process.stderr.write(`coderclaw node running; data ${dataDir}; control socket ${paths.controlSocket}\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      process.stderr.write("shutting down...\n");
      await control.close();
      rmSync(paths.controlToken, { force: true });
      await core.close();
      setExit(EXIT.ok);
    });
}
