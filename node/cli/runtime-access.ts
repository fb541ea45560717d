import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TransportAdapter } from "../../src/contract/types.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { dataPaths, resolveDataDir } from "../../src/runtime/data-dir.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { ControlClientAdapter } from "../control/control-client.js";
import { actorIdOf } from "../device-actor.js";

/** Global CLI options that say where tasks live. */
export interface AccessOptions {
  home?: string;
  server?: string;
  token?: string;
}

/** How a command reached the runtime, for messages. */
export type AccessKind = "server" | "node" | "storage" | "in-process";

/**
 * The node running on `dataDir`, through its control socket; undefined when none
 * answers (no socket, or one left by a node that died: storage, which the
 * database lock protects, is then the caller's to open).
 */
export async function connectRunningNode(dataDir: string): Promise<ControlClientAdapter | undefined> {
  const paths = dataPaths(dataDir);
  if (!existsSync(paths.controlSocket) || !existsSync(paths.controlToken)) return undefined;
  try {
    return await ControlClientAdapter.connect(paths.controlSocket, readFileSync(paths.controlToken, "utf8").trim());
  } catch (err) {
    if (err instanceof CoderClawError && err.code === "UNAVAILABLE") return undefined;
    throw err;
  }
}

/** The HTTP client of `--server URL`, or undefined without the flag. */
export function serverAdapter(options: AccessOptions): HTTPTransportAdapter | undefined {
  if (options.server === undefined) return undefined;
  const token = options.token ?? process.env.CODERCLAW_TOKEN;
  if (!token) throw new CoderClawError("INVALID_INPUT", "--server needs --token or CODERCLAW_TOKEN", { field: "token" });
  // A snapshot sent with --repo keeps its stat cache in the home, as a node's own does: the next send reads only what changed.
  return new HTTPTransportAdapter({ baseUrl: options.server, token, snapshotCacheDir: join(dataPaths(resolveDataDir(options.home)).workspaces, "stat-cache") });
}

/**
 * Reach the runtime the way the README describes:
 * `--server URL` talks HTTP to a remote node; otherwise a node running on this
 * data directory (`coderclaw start`) is reached over its control socket;
 * otherwise the command opens storage itself, running tasks in this process only
 * when `runTasks` is asked (`task submit --wait`).
 */
export async function openAccess(options: AccessOptions, runTasks: boolean): Promise<{ adapter: TransportAdapter; kind: AccessKind }> {
  const server = serverAdapter(options);
  if (server) return { adapter: server, kind: "server" };
  const dataDir = resolveDataDir(options.home);
  const client = await connectRunningNode(dataDir);
  if (client) return { adapter: client, kind: "node" };
  const [{ loadAgentRegistry }, { LocalTransportAdapter }, { deviceKeyPath, loadOrCreateDeviceIdentity }] = await Promise.all([
    import("../../src/agents/index.js"),
    import("../../src/transport/local-adapter.js"),
    import("../../identity/device.js"),
  ]);
  const agents = loadAgentRegistry({ dataDir, home: dataDir, workspaceDir: process.cwd() });
  // In a node's home, tasks written here are the node's own: they name its device as executor, so the node
  // runs what is queued and its peers take the documents as signed by it.
  const device = existsSync(deviceKeyPath(dataDir)) ? await loadOrCreateDeviceIdentity(dataDir) : undefined;
  const adapter = await LocalTransportAdapter.open({ dataDir, runTasks, agents, ...(device && { executorId: device.peerId, actorId: actorIdOf(device.peerId) }) });
  return { adapter, kind: runTasks ? "in-process" : "storage" };
}
