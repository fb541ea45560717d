/**
 * `coderclaw`: the runtime contract (types and errors), the task engine, the
 * built-in agents and the in-process adapter. For the HTTP client see
 * `coderclaw/transport`; for a mesh node, `coderclaw/node`.
 *
 * @example Run a task in this process and follow it
 * ```ts
 * import { CoderClawRuntime, LocalTransportAdapter } from "coderclaw";
 *
 * const runtime = new CoderClawRuntime(new LocalTransportAdapter({ dataDir: "/tmp/coderclaw-example" }), "local-only");
 * const task = await runtime.submitTask({ description: "greet", input: "hello", agentId: "echo" });
 * for await (const update of runtime.streamTaskUpdates(task.id)) console.log(update.status);
 * console.log((await runtime.getTaskState(task.id))?.output);
 * await runtime.close();
 * ```
 *
 * @packageDocumentation
 */
import "./polyfills.js";

export * from "./contract/types.js";
export * from "./contract/errors.js";
export type * from "./agents/executor.js";
export { createBuiltinRegistry, createEchoAgent, createSleepAgent, StaticAgentRegistry } from "./agents/builtin.js";
export { CoderClawRuntime } from "./transport/runtime.js";
export { LocalTransportAdapter } from "./transport/local-adapter.js";
export { openLocalCore, type LocalContext, type LocalCore } from "./runtime/local-core.js";
export { resolveDataDir } from "./runtime/data-dir.js";
export { TaskEngine, type TaskEngineOptions } from "./engine/task-engine.js";
export { TRANSITIONS, canTransition, isTerminal } from "./engine/state-machine.js";
export { VERSION } from "./version.js";
