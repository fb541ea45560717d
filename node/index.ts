/**
 * `coderclaw/node`: run a mesh node inside another Node app.
 *
 * ```ts
 * import { createNode } from "coderclaw/node";
 * const node = await createNode({ dataDir: "/var/lib/app/coderclaw" });
 * const runtime = new CoderClawRuntime(node.adapter, "distributed-cluster");
 * ```
 */
import "../src/polyfills.js";

export { createNode, type CoderClawNode, type NodeOptions, type PeerInfo } from "./create-node.js";
export { ClusterTransportAdapter, type ClusterParts, type SubmitOptions } from "./cluster-adapter.js";
export { Membership } from "./mesh/membership.js";
export { StatementSet, type SetItem, type ItemKind } from "./mesh/statement-set.js";
export { PairingService, type PairingReport } from "./mesh/pairing-service.js";
export { runAdmin, ADMIN_METHODS, type AdminMethod } from "./node-admin.js";
export { startControlServer, type ControlServer, type ControlServerOptions } from "./control/control-server.js";
export { startNodeControl, type NodeControlOptions } from "./control/node-control.js";
export { ControlClientAdapter } from "./control/control-client.js";
export { CoderClawRuntime } from "../src/transport/runtime.js";
