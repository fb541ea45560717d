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
