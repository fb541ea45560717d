import { existsSync, readFileSync } from "node:fs";
import type { TransportAdapter } from "../../src/contract/types.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { dataPaths, resolveDataDir } from "../../src/runtime/data-dir.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { ControlClientAdapter } from "../control/control-client.js";

/** Global CLI options that say where tasks live. */
export interface AccessOptions {
  home?: string;
  server?: string;
  token?: string;
}

/** How a command reached the runtime, for messages. */
export type AccessKind = "server" | "node" | "storage" | "in-process";

/**
 * Reach the runtime the way the README describes:
 * `--server URL` talks HTTP to a remote node; otherwise a node running on this
 * data directory (`coderclaw start`) is reached over its control socket;
 * otherwise the command opens storage itself, running tasks in this process only
 * when `runTasks` is asked (`task submit --wait`).
 */
export async function openAccess(options: AccessOptions, runTasks: boolean): Promise<{ adapter: TransportAdapter; kind: AccessKind }> {
  if (options.server !== undefined) {
    const token = options.token ?? process.env.CODERCLAW_TOKEN;
    if (!token) throw new CoderClawError("INVALID_INPUT", "--server needs --token or CODERCLAW_TOKEN", { field: "token" });
    return { adapter: new HTTPTransportAdapter({ baseUrl: options.server, token }), kind: "server" };
  }
  const dataDir = resolveDataDir(options.home);
  const paths = dataPaths(dataDir);
  if (existsSync(paths.controlSocket) && existsSync(paths.controlToken)) {
    try {
      const token = readFileSync(paths.controlToken, "utf8").trim();
      return { adapter: await ControlClientAdapter.connect(paths.controlSocket, token), kind: "node" };
    } catch (err) {
      // A socket left by a node that died: fall through to storage, which the lock protects.
      if (!(err instanceof CoderClawError && err.code === "UNAVAILABLE")) throw err;
    }
  }
  const [{ loadAgentRegistry }, { LocalTransportAdapter }] = await Promise.all([import("../../src/agents/index.js"), import("../../src/transport/local-adapter.js")]);
  const agents = loadAgentRegistry({ dataDir, workspaceDir: process.cwd() });
  const adapter = await LocalTransportAdapter.open({ dataDir, runTasks, agents });
  return { adapter, kind: runTasks ? "in-process" : "storage" };
}
