import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { assertBuilt } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { isAlive } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const PROCESS_MODULE = fileURLToPath(new URL("../../dist/src/agents/process.js", import.meta.url));

/**
 * A task's shell line whose node is SIGKILLed must not go on to its next
 * command: the node records the task as interrupted when it starts again, and a
 * retry would do that command a second time.
 */
describe.runIf(process.platform === "linux" && existsSync("/usr/bin/setpriv"))("a task's process when its node is SIGKILLed", () => {
  it("dies at once, before its next command runs", async () => {
    const dir = tempDir("cc-pdeath-");
    try {
      const pidFile = join(dir.path, "pid");
      const effect = join(dir.path, "effect");
      const script = join(dir.path, "node.mjs");
      writeFileSync(
        script,
        `import { runProcess } from ${JSON.stringify(PROCESS_MODULE)};
await runProcess({ argv: ["sh", "-c", ${JSON.stringify(`echo $$ > ${pidFile}; sleep 3; echo late > ${effect}`)}], cwd: ${JSON.stringify(dir.path)}, env: { PATH: process.env.PATH }, signal: new AbortController().signal });`,
      );
      const node = spawn(process.execPath, [script], { stdio: "ignore" });
      await eventually(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", 10_000, "the shell started");
      const shell = Number(readFileSync(pidFile, "utf8").trim());
      node.kill("SIGKILL");
      await eventually(() => !isAlive(shell) || readFileSync(`/proc/${shell}/stat`, "utf8").includes(") Z "), 2000, "the shell gone");
      await new Promise((r) => setTimeout(r, 3500));
      expect(existsSync(effect)).toBe(false);
    } finally {
      dir.remove();
    }
  });
});
