/**
 * `coderclaw/transport`: the runtime and every transport adapter. The mesh
 * adapter lives in node/ (it needs libp2p), so this entry point sits here and
 * re-exports the ones from src/.
 */
import "../src/polyfills.js";

export * from "../src/transport/index.js";
export { ClusterTransportAdapter, type ClusterParts, type SubmitOptions } from "./cluster-adapter.js";
