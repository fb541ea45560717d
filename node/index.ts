/**
 * `coderclaw/node`: run a mesh node inside another Node app: `createNode`, the
 * cluster adapter, membership, pairing, the control socket.
 *
 * @example Two nodes in one process: found a mesh, pair, run a task on the other
 * ```ts
 * import { createNode, CoderClawRuntime } from "coderclaw/node";
 *
 * const laptop = await createNode({ dataDir: "/tmp/coderclaw-laptop", mdns: false });
 * const server = await createNode({ dataDir: "/tmp/coderclaw-server", mdns: false });
 * await laptop.createMesh("home");
 * const { invite } = await laptop.pairing.invite("trusted", 60_000);
 * await server.pairing.join(invite);
 * const task = await laptop.adapter.submitTask({ description: "nap", input: "100 2", agentId: "sleep" }, { route: server.peerId });
 * const runtime = new CoderClawRuntime(laptop.adapter, "distributed-cluster");
 * for await (const update of runtime.streamTaskUpdates(task.id)) console.log(update.status, update.progress ?? "");
 * await Promise.all([laptop.stop(), server.stop()]);
 * ```
 *
 * @packageDocumentation
 */
import "../src/polyfills.js";

export { createNode, type CoderClawNode, type NodeOptions, type PeerInfo, type PingReport } from "./create-node.js";
export { grantTaskResult, openTaskChanges, taskChanges, type OpenedChanges, type TaskChanges } from "./workspaces/task-result.js";
export { RecentChanges, type OpenChanges } from "./workspaces/recent-changes.js";
export { signTreeGrant, readTreeGrant, type TreeGrant } from "./workspaces/tree-grants.js";
export { CodeWorkspaces } from "./workspaces/code-workspaces.js";
export type { ResultFile, ResultRequest } from "./workspaces/result-files.js";
export { applyResultCommits, applyResultPatch, patchRefusal, workTreePlace, type PatchOutcome, type WorkTreePlace } from "./workspaces/result-patch.js";
export { artifactWriteProblem, writeResultArtifacts } from "./workspaces/result-artifacts.js";
export { ClusterTransportAdapter, type ClusterParts, type SubmitOptions } from "./cluster-adapter.js";
export { Membership } from "./mesh/membership.js";
export { StatementSet, type SetItem, type ItemKind } from "./mesh/statement-set.js";
export { PairingService, type PairingReport } from "./mesh/pairing-service.js";
export { runAdmin, ADMIN_METHODS, type AdminMethod } from "./node-admin.js";
export { startControlServer, type ControlServer, type ControlServerOptions } from "./control/control-server.js";
export { startNodeControl, type NodeControlOptions } from "./control/node-control.js";
export { ControlClientAdapter } from "./control/control-client.js";
export { CoderClawRuntime } from "../src/transport/runtime.js";
