import type { TaskEvent, TaskUpdateEvent } from "../contract/types.js";
import { AsyncQueue } from "../util/async-queue.js";
import { isTerminalEvent } from "./state-machine.js";

/** A task's history as it grows: the entries so far, how many of them are announced, and the listeners told of each new one. */
export interface FollowedHistory {
  events: readonly TaskEvent[];
  /** Entries past this one are recorded but not announced yet (an outcome waiting to be durable); they come through the listeners. */
  announced: number;
  listeners: Set<(event: TaskEvent) => void>;
}

/** Turn a history entry into the stream's update shape. */
export function toUpdate(taskId: string, e: TaskEvent): TaskUpdateEvent {
  const u: TaskUpdateEvent = { taskId, status: e.status, timestamp: e.timestamp, seq: e.seq };
  if (e.message !== undefined) u.message = e.message;
  if (e.progress !== undefined) u.progress = e.progress;
  if (e.data !== undefined) u.data = e.data;
  return u;
}

/**
 * A live task's history after `afterSeq`, then its new entries as they are
 * recorded, ending after the entry that ends the task or when `signal` aborts.
 */
export async function* followEvents(task: FollowedHistory, afterSeq: number, signal?: AbortSignal): AsyncGenerator<TaskEvent> {
  let last = afterSeq;
  const queue = new AsyncQueue<TaskEvent>();
  const listener = (e: TaskEvent): void => {
    queue.push(e);
    if (isTerminalEvent(e)) queue.end();
  };
  const onAbort = (): void => queue.end();
  task.listeners.add(listener);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (const e of task.events.slice(0, task.announced)) {
      if (e.seq <= last) continue;
      last = e.seq;
      yield e;
      if (isTerminalEvent(e)) return;
    }
    if (signal?.aborted) return;
    for (let r = await queue.next(); !r.done; r = await queue.next()) {
      if (r.value.seq <= last) continue;
      last = r.value.seq;
      yield r.value;
      if (isTerminalEvent(r.value)) return;
    }
  } finally {
    task.listeners.delete(listener);
    signal?.removeEventListener("abort", onAbort);
  }
}
