import "../polyfills.js";

export { CoderClawRuntime } from "./runtime.js";
export { LocalTransportAdapter } from "./local-adapter.js";
export { HTTPTransportAdapter, type HTTPTransportConfig } from "./http-adapter.js";
export type { LocalContext } from "../runtime/local-core.js";
export * from "../contract/types.js";
export * from "../contract/errors.js";
