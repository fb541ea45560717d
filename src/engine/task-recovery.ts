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
