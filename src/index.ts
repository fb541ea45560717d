import "./polyfills.js";

export * from "./contract/types.js";
export * from "./contract/errors.js";
export type * from "./agents/executor.js";
