import type { TaskWorkspaces } from "../src/engine/execution-environment.js";
import type { ApprovalPolicy, OpenGate } from "../src/engine/approval-gate.js";
import type { TaskSubmitRequest } from "../src/contract/types.js";
import { openLocalCore, type LocalCore } from "../src/runtime/local-core.js";
import { actorIdOf } from "./device-actor.js";
import { ATTEMPT_OF } from "./scheduling/attempt-metadata.js";
import type { NodeOptions } from "./node-api.js";

/**
 * The local core of a mesh node: storage and the task engine, executing as
 * this device (its id binds the tasks it runs; its Automerge actor writes their
 * documents), with work from other devices sandboxed unless told otherwise.
 */
/** Callbacks into parts of the node made after its core (the policy and the approvals service). */
export interface NodeCoreHooks {
  approvalPolicy?: ApprovalPolicy;
  onApprovalNeeded?: (gate: OpenGate) => void;
}

const isAttempt = (request: Readonly<TaskSubmitRequest>): boolean => request.metadata?.[ATTEMPT_OF] !== undefined;

export function openNodeCore(dataDir: string, deviceId: string, options: NodeOptions, report: (error: Error) => void, workspaces?: TaskWorkspaces, hooks: NodeCoreHooks = {}): Promise<LocalCore> {
  return openLocalCore({
    dataDir,
    executorId: deviceId,
    actorId: actorIdOf(deviceId),
    ...(options.agents && { agents: options.agents }),
    ...(options.maxConcurrentTasks !== undefined && { maxConcurrentTasks: options.maxConcurrentTasks }),
    ...(options.maxOutputBytes !== undefined && { maxOutputBytes: options.maxOutputBytes }),
    ...(options.defaultTimeoutMs !== undefined && { defaultTimeoutMs: options.defaultTimeoutMs }),
    sandbox: { mode: options.sandbox ?? "required", ...(options.bwrapPath !== undefined && { bwrap: options.bwrapPath }) },
    ...(workspaces && { workspaces }),
    ...(options.announceBeforeDurable === true && { announceBeforeDurable: true }),
    ...(hooks.approvalPolicy && { approvalPolicy: hooks.approvalPolicy }),
    ...(hooks.onApprovalNeeded && { onApprovalNeeded: hooks.onApprovalNeeded }),
    // An attempt's keeper mirrors it into the task it replicates: the attempt's own document can wait for its end,
    // and stays here (its output reached the keeper over the task stream; sent again by sync, it crossed the wire twice).
    documentOnlyAtEnd: isAttempt,
    homeOnly: isAttempt,
    onUnreadable: (taskId, error) => report(new Error(`task ${taskId} cannot be read and is left out of listings: ${error.message}`, { cause: error })),
    onBackgroundError: report,
  });
}
