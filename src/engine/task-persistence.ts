import { setImmediate as nextTurn } from "node:timers/promises";
import { TurnBatch } from "../util/turn-batch.js";
import { copyState, type PersistedTask } from "./live-task.js";
import { isTerminal } from "./state-machine.js";
import type { TaskRecord } from "./task-document.js";
import type { TaskChangeSet, TaskRepository } from "./task-repository.js";
import { RecentlyEnded } from "./recently-ended.js";

/** Dependencies of a {@link TaskPersistence}. */
export interface TaskPersistenceOptions<T extends PersistedTask> {
  repository: TaskRepository;
  /** Age at which a task that has not ended gets its document; see `TaskEngineOptions.materializeAfterMs`. */
  materializeAfterMs: number;
  /** Tasks that get their document only when they end; see `TaskEngineOptions.documentOnlyAtEnd`. */
  documentOnlyAtEnd?: (task: T) => boolean;
  /**
   * Called after a write for each task that has ended and whose whole history is
   * now durable: true when its owner has let it go from memory, so that reads
   * are served from here from now on.
   */
  release: (task: T) => boolean;
}

/**
 * How live tasks reach storage: every task changed in a turn of the event loop
 * is written in one repository call (group commit), a young task as a
 * write-ahead record and one that has ended or aged as its Automerge document,
 * and a quiet task gets its document from a timer. Waiters learn when a task's
 * history up to a point is durable. Ended tasks that left memory are read back
 * through here.
 */
export class TaskPersistence<T extends PersistedTask> {
  readonly #repository: TaskRepository;
  readonly #materializeAfterMs: number;
  readonly #release: (task: T) => boolean;
  readonly #documentOnlyAtEnd: (task: T) => boolean;
  /** Tasks with changes not yet taken by a write. */
  readonly #dirty = new Set<T>();
  /**
   * Takes a task the turn it becomes dirty and, at the end of that turn, queues
   * a flush. The flush writes what is dirty when it runs rather than what was
   * handed over: behind a write still in progress it runs later, and by then more
   * tasks (and more of the same tasks) have changed, which it takes in the same write.
   */
  readonly #turn = new TurnBatch<T>(
    () => this.#queueFlush(),
    () => false,
  );
  #flushes: Promise<void> = Promise.resolve();
  /** A flush is being written. */
  #writing = false;
  /** Tasks stored only as write-ahead records, waiting for their document. */
  readonly #unmaterialized = new Set<T>();
  #materializeTimer: NodeJS.Timeout | undefined;
  readonly #recentlyEnded = new RecentlyEnded();
  #healthy = true;

  constructor(options: TaskPersistenceOptions<T>) {
    this.#repository = options.repository;
    this.#materializeAfterMs = options.materializeAfterMs;
    this.#release = options.release;
    this.#documentOnlyAtEnd = options.documentOnlyAtEnd ?? (() => false);
  }

  /** False once a write has failed. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** The task has new events: write them with the next group commit. */
  changed(task: T): void {
    // A task already dirty is taken by a flush already queued or handed over.
    if (this.#dirty.has(task)) return;
    this.#dirty.add(task);
    this.#turn.push(task);
  }

  /** Resolves once every event the task has now is durable; rejects when their write fails. */
  durable(task: T): Promise<void> {
    const upTo = task.events.length;
    if (task.persistedEvents >= upTo) return Promise.resolve();
    return new Promise((resolve, reject) => task.persistWaiters.push({ upTo, resolve, reject }));
  }

  /** Resolves when every event recorded so far is durable. */
  async drain(): Promise<void> {
    // Whatever is dirty has a flush queued (see changed()); wait until one has taken it, then for the writes queued.
    while (this.#dirty.size > 0) await nextTurn();
    await this.#flushes;
  }

  /** A task that has left memory: from the recently ended, else from the repository. */
  async load(taskId: string): Promise<TaskRecord | undefined> {
    return this.#recentlyEnded.get(taskId) ?? (await this.#repository.load(taskId));
  }

  /** Stop the materialisation timer: write-ahead records are durable, and the next start turns them into documents. */
  stop(): void {
    clearTimeout(this.#materializeTimer);
  }

  #queueFlush(): void {
    // Behind a flush still being written, this one waits for the end of the turn in which that write completes:
    // the completion lets the work that waited for it go on (an admitted task starts and, when quick, ends in that
    // turn), and taking the dirty tasks mid-turn would write states already out of date, a write each.
    const behind = this.#writing;
    this.#flushes = this.#flushes.then(() => (behind ? nextTurn() : undefined)).then(() => this.#flush());
  }

  async #flush(): Promise<void> {
    if (this.#dirty.size === 0) return;
    this.#writing = true;
    try {
      await this.#write();
    } finally {
      this.#writing = false;
    }
  }

  /**
   * Group commit: every dirty task's new events in one repository call. A task
   * that has ended, or lived `materializeAfterMs`, gets its document; a younger
   * one only a write-ahead record.
   */
  async #write(): Promise<void> {
    const tasks = [...this.#dirty];
    this.#dirty.clear();
    const changes: TaskChangeSet[] = [];
    const marks: Array<{ task: T; upTo: number }> = [];
    const now = Date.now();
    for (const task of tasks) {
      const upTo = task.events.length;
      const state = copyState(task.state);
      const materialize = task.stored === "doc" || (task.stored === "wal" && (isTerminal(state.status) || this.#aged(task, now)));
      // A document is built from (and a write-ahead record holds) the whole history; a document update only the new part.
      const events = task.stored === "doc" ? task.events : task.events.slice(0, upTo);
      changes.push({
        record: { request: task.request, state, events },
        stored: task.stored,
        previous: task.persisted,
        newEvents: task.events.slice(task.persistedEvents, upTo),
        materialize,
      });
      marks.push({ task, upTo });
      task.stored = materialize ? "doc" : "wal";
      task.persisted = state;
      task.persistedEvents = upTo;
      if (materialize || this.#documentOnlyAtEnd(task)) this.#unmaterialized.delete(task);
      else this.#unmaterialized.add(task);
    }
    this.#armMaterializeTimer();
    try {
      await this.#repository.persist(changes);
    } catch (err) {
      this.#healthy = false;
      for (const { task } of marks) for (const w of task.persistWaiters.splice(0)) w.reject(err);
      return;
    }
    for (const { task, upTo } of marks) {
      const waiting = task.persistWaiters;
      task.persistWaiters = waiting.filter((w) => w.upTo > upTo);
      for (const w of waiting) if (w.upTo <= upTo) w.resolve();
      if (isTerminal(task.state.status) && task.persistedEvents === task.events.length && !this.#dirty.has(task) && this.#release(task)) {
        this.#recentlyEnded.keep(task);
      }
    }
  }

  #aged(task: T, now: number): boolean {
    return now - task.state.createdAt.getTime() >= this.#materializeAfterMs && !this.#documentOnlyAtEnd(task);
  }

  /**
   * Tasks that stay quiet (queued, or running without news) get their document
   * from a timer: until then other nodes cannot replicate them.
   */
  #armMaterializeTimer(): void {
    if (this.#materializeTimer !== undefined || this.#unmaterialized.size === 0) return;
    this.#materializeTimer = setTimeout(() => {
      this.#materializeTimer = undefined;
      const due = Date.now() - this.#materializeAfterMs;
      for (const task of this.#unmaterialized) {
        if (task.state.createdAt.getTime() > due && !isTerminal(task.state.status)) continue;
        this.changed(task);
      }
      // Otherwise the flush now queued arms the timer again once it has written.
      if (this.#dirty.size === 0) this.#armMaterializeTimer();
    }, this.#materializeAfterMs);
    this.#materializeTimer.unref();
  }
}
