import type { TaskRecord } from "./task-document.js";

/** Ended tasks kept, and the size of the largest kept. */
const RECENTLY_ENDED = 1024;
const RECENTLY_ENDED_MAX_BYTES = 16 * 1024;

/** Characters of text a record holds, roughly its memory. */
function recordSize(record: TaskRecord): number {
  let n = record.request.input.length + (record.state.output?.length ?? 0) + (record.state.error?.length ?? 0);
  for (const e of record.events) n += 32 + (e.message?.length ?? 0);
  return n;
}

/**
 * The records of the small tasks that most recently ended and left memory,
 * oldest first: a submitter reads a task again just after it ends (its follow,
 * its state), and reading it back from storage would load its Automerge document.
 */
export class RecentlyEnded {
  readonly #records = new Map<string, TaskRecord>();

  /** Keep a durable, ended task's record unless it is large; the oldest kept goes when there are too many. */
  keep(record: TaskRecord): void {
    if (recordSize(record) > RECENTLY_ENDED_MAX_BYTES) return;
    this.#records.set(record.state.id, { request: record.request, state: record.state, events: record.events });
    if (this.#records.size > RECENTLY_ENDED) this.#records.delete(this.#records.keys().next().value!);
  }

  get(taskId: string): TaskRecord | undefined {
    return this.#records.get(taskId);
  }
}
