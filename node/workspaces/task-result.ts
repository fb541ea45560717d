import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskEvent, TransportAdapter } from "../../src/contract/types.js";
import { workspaceResultOf, type WorkspaceResult } from "../../src/workspace/task-spec.js";
import type { CodeWorkspaces } from "./code-workspaces.js";

/** What a task that carried code changed: its result record, its patch, and the artifacts it brought back. */
export interface TaskChanges {
  result: WorkspaceResult;
  patch: Buffer;
  artifacts: Array<{ path: string; bytes: Buffer }>;
}

/**
 * The changes of a completed task that carried code, read from its completion
 * (wherever the task is kept) and fetched from the node that holds them.
 */
export async function taskChanges(adapter: Pick<TransportAdapter, "getTaskState"> & { getTaskEvents(taskId: string): Promise<TaskEvent[]> }, workspaces: CodeWorkspaces, taskId: string, signal?: AbortSignal): Promise<TaskChanges> {
  const state = await adapter.getTaskState(taskId);
  if (state === null) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
  if (state.status !== "completed") throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} is ${state.status}: only a completed task has changes to show`);
  const events = await adapter.getTaskEvents(taskId);
  const done = events.findLast((e) => e.type === "status_changed" && e.status === "completed");
  const result = workspaceResultOf(done?.data);
  if (result === undefined) throw new CoderClawError("NOT_FOUND", `task ${taskId} did not carry code (submit it with --repo): it has no changes`);
  try {
    return { result, ...(await workspaces.result(result, signal)) };
  } catch (err) {
    // Held here and gone: let go of by `task clean` or after the retention, not lost.
    if (err instanceof CoderClawError && err.code === "NOT_FOUND" && result.heldBy === workspaces.selfId) {
      throw new CoderClawError("NOT_FOUND", `task ${taskId}'s result is no longer kept on this node (released by \`coderclaw task clean\`, or older than the result retention)`, { cause: err });
    }
    throw err;
  }
}
