import type { TaskEvent, TaskState } from "../contract/types.js";
import type { AgentExecutor, ExecutionResult } from "../agents/executor.js";
import type { OutputBuffer } from "./output-buffer.js";
import type { TaskRecord } from "./task-document.js";
import type { StoredAs } from "./task-repository.js";

/** What persisting a task keeps beside its record: how far its history is written, and who waits for that. */
export interface PersistedTask extends TaskRecord {
  stored: StoredAs;
  /** State as last handed to the repository; undefined before the first flush. */
  persisted: TaskState | undefined;
  persistedEvents: number;
  persistWaiters: Array<{ upTo: number; resolve: () => void; reject: (e: unknown) => void }>;
}

/** An executor's outcome. */
export type Outcome = { ok: true; result: ExecutionResult } | { ok: false; error: unknown };

/** A task the engine holds in memory, where it is authoritative until it has ended and is durable. */
export interface LiveTask extends PersistedTask {
  agent: AgentExecutor | undefined;
  controller?: AbortController;
  executing: boolean;
  timer?: NodeJS.Timeout;
  /** Executor finished while the task was paused: applied on resume. */
  held?: Outcome;
  /** Recovered from storage with no executor behind it; resume must start one. */
  orphaned: boolean;
  checkpointWaiters: Array<() => void>;
  /** Followers of this task's history (see `followEvents`). */
  listeners: Set<(event: TaskEvent) => void>;
  /** Events told to followers so far: all but an outcome that is not durable yet. */
  announced: number;
  /** Bare progress that waits for its coalescing window (see TaskEngineOptions.progressCoalesceMs). */
  progressPending?: { value: number; timer: NodeJS.Timeout };
  /** Created by the task's first output; most tasks have none. */
  output?: OutputBuffer;
  /** Consulted before the task is recorded `completed`: a reason makes it fail with that reason instead (a fenced task). */
  outcomeGuard?: () => string | undefined;
  /** Kept here but placed and run elsewhere by a dispatcher (see `TaskEngine.submit`'s `hold`); never started by the engine. */
  delegated: boolean;
}

/** `stored` is the record's state as read back from the repository, if it came from there. */
export function newLiveTask(record: TaskRecord, agent: AgentExecutor | undefined, stored: TaskState | undefined): LiveTask {
  return {
    request: record.request,
    state: record.state,
    events: record.events,
    stored: stored === undefined ? "none" : "doc",
    persisted: stored,
    persistedEvents: stored === undefined ? 0 : record.events.length,
    persistWaiters: [],
    agent,
    executing: false,
    orphaned: false,
    checkpointWaiters: [],
    listeners: new Set(),
    announced: record.events.length,
    delegated: false,
  };
}

/** A copy of a state that its holder may keep or change without touching the task's own. */
export function copyState(state: TaskState): TaskState {
  const copy = { ...state };
  if (state.metadata !== undefined) copy.metadata = { ...state.metadata };
  if (state.placement !== undefined) copy.placement = { ...state.placement };
  return copy;
}
