/**
 * `coderclaw/transport`: the runtime and every transport adapter (in-process,
 * HTTP, mesh). The mesh adapter lives in node/ (it needs libp2p), so this entry
 * point sits here and re-exports the ones from src/.
 *
 * @example Talk to a node's HTTP API (`coderclaw start --http`, a token from `coderclaw session create`)
 * ```ts
 * import { CoderClawRuntime, HTTPTransportAdapter } from "coderclaw/transport";
 *
 * const adapter = new HTTPTransportAdapter({ baseUrl: "http://127.0.0.1:7420", token: process.env.CODERCLAW_TOKEN ?? "" });
 * const runtime = new CoderClawRuntime(adapter, "remote-enabled");
 * const task = await runtime.submitTask({ description: "greet", input: "hello", agentId: "echo" });
 * for await (const update of runtime.streamTaskUpdates(task.id)) console.log(update.status, update.message ?? "");
 * ```
 *
 * @packageDocumentation
 */
import "../src/polyfills.js";

export * from "../src/transport/index.js";
export { ClusterTransportAdapter, type ClusterParts, type SubmitOptions } from "./cluster-adapter.js";
