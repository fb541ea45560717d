import { isTerminal } from "./state-machine.js";
import type { TaskRecord } from "./task-document.js";
import type { TaskRepository } from "./task-repository.js";

/**
 * The unfinished tasks a starting engine takes up again, oldest first: those
 * this node admitted itself and that name it (or no node) as their executor.
 * Each is read once the engine has taken up the one before (and perhaps
 * started its executor).
 */
export async function* ownUnfinishedTasks(repository: TaskRepository, executorId: string | undefined): AsyncGenerator<TaskRecord> {
  // A home from before admission records: its active tasks that name this node (or no node) as executor were its own.
  await repository.adoptAdmissions((record) => record.state.executorId === executorId);
  for (const id of await repository.activeTaskIds()) {
    // Only work this node admitted itself runs here: a replicated document is state, never work, whatever it says.
    if (!repository.isAdmitted(id)) continue;
    const record = await repository.load(id);
    if (!record || isTerminal(record.state.status)) continue;
    // Queued by a process that names no executor (the CLI with no node running) or by this node.
    if (record.state.executorId !== undefined && record.state.executorId !== executorId) continue;
    yield record;
  }
}

/**
 * Metadata key under which an executor records the `fenceAfterMs` a submitter
 * fenced a retryable task with. The fence itself (its timer, the submitter's
 * acknowledgements) lives in memory and dies with the process.
 */
export const FENCE_AFTER_MS = "fenceAfterMs";

/**
 * Why a recovered task must not run again here, or undefined. A fenced task's
 * submitter re-places it elsewhere once it heard nothing for its fence, which a
 * restart may well have outlasted, and no acknowledgement before the restart
 * says otherwise: started or resumed here now, it could run and finish twice.
 * Failed as superseded, its submitter places it again itself.
 */
export function lostFence(record: TaskRecord): string | undefined {
  const metadata = record.state.metadata;
  if (metadata?.retryable !== true || typeof metadata[FENCE_AFTER_MS] !== "number") return undefined;
  return `superseded: lease lost (this node restarted; ${String(metadata.requester ?? record.state.submittedBy ?? "its submitter")} re-places the task after ${metadata[FENCE_AFTER_MS]} ms)`;
}
