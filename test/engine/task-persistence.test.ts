import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import type { TaskStatus } from "../../src/contract/types.js";
import type { PersistedTask } from "../../src/engine/live-task.js";
import { newTaskId } from "../../src/engine/task-id.js";
import { TaskPersistence } from "../../src/engine/task-persistence.js";
import { LevelTaskRepository, type TaskChangeSet, type TaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  repository: LevelTaskRepository;
  /** Each repository write: the tasks it held, as `id:events`. */
  writes: string[][];
  persistence: TaskPersistence<PersistedTask>;
  released: string[];
}

/** A persistence over a real repository whose writes are logged and, when `slowMs` is set, take that long more. */
async function setup(options: { materializeAfterMs?: number; slowMs?: number; release?: boolean } = {}): Promise<Setup> {
  const dir = tempDir();
  const db: Database = await openDatabase(dir.path);
  cleanups.push(() => dir.remove(), () => db.close());
  const repository = await LevelTaskRepository.open(db, new LevelDocumentStore(db, { path: dir.path }));
  const writes: string[][] = [];
  const logged: TaskRepository = Object.create(repository, {
    persist: {
      value: async (changes: readonly TaskChangeSet[]) => {
        writes.push(changes.map((c) => `${c.record.state.id}:${c.record.events.length}`));
        if (options.slowMs !== undefined) await sleep(options.slowMs);
        return repository.persist(changes);
      },
    },
  });
  const released: string[] = [];
  const persistence = new TaskPersistence<PersistedTask>({
    repository: logged,
    materializeAfterMs: options.materializeAfterMs ?? 60_000,
    release: (task) => {
      released.push(task.state.id);
      return options.release ?? true;
    },
  });
  cleanups.push(() => persistence.stop());
  return { repository, writes, persistence, released };
}

let made = 0;
function task(): PersistedTask {
  const state = { id: newTaskId(Date.now() + made++), status: "pending" as TaskStatus, agentId: "echo", description: "t", createdAt: new Date() };
  return { request: { description: "t", input: "x", agentId: "echo" }, state, events: [], stored: "none", persisted: undefined, persistedEvents: 0, persistWaiters: [] };
}

/** A new history entry of the task, handed to the persistence. */
function change(persistence: TaskPersistence<PersistedTask>, t: PersistedTask, status: TaskStatus = t.state.status): void {
  t.state.status = status;
  t.events.push({ seq: t.events.length + 1, type: "status_changed", timestamp: new Date(), status });
  persistence.changed(t);
}

describe("TaskPersistence", () => {
  it("writes every task changed in a turn in one repository call, each once however often it changed", async () => {
    const s = await setup();
    const tasks = [task(), task(), task()];
    for (const t of tasks) {
      for (let i = 0; i < 3; i++) {
        change(s.persistence, t);
      }
    }
    await Promise.all(tasks.map((t) => s.persistence.durable(t)));
    expect(s.writes).toEqual([tasks.map((t) => `${t.state.id}:3`)]);
    expect(tasks.map((t) => t.stored)).toEqual(["wal", "wal", "wal"]);
    expect((await s.repository.load(tasks[0]!.state.id))?.events).toHaveLength(3);
  });

  it("a task changed while a write is in progress goes into the next write with everything since, once", async () => {
    const s = await setup({ slowMs: 30 });
    const a = task();
    const b = task();
    change(s.persistence, a);
    const first = s.persistence.durable(a);
    await sleep(5);
    expect(s.writes).toHaveLength(1);
    change(s.persistence, a);
    await new Promise((resolve) => setImmediate(resolve));
    change(s.persistence, a);
    change(s.persistence, b);
    await first;
    await s.persistence.drain();
    expect(s.writes).toEqual([[`${a.state.id}:1`], [`${a.state.id}:3`, `${b.state.id}:1`]]);
    expect(a.persistedEvents).toBe(3);
  });

  it("drain waits for changes of this turn and writes in progress", async () => {
    const s = await setup({ slowMs: 20 });
    const a = task();
    change(s.persistence, a);
    await s.persistence.drain();
    expect(a.persistedEvents).toBe(1);
    expect(s.writes).toHaveLength(1);
  });

  it("an ended task is offered for release once durable; a released one is read back from memory", async () => {
    const s = await setup();
    const t = task();
    change(s.persistence, t, "completed");
    await s.persistence.drain();
    expect(s.released).toEqual([t.state.id]);
    expect((await s.persistence.load(t.state.id))?.events).toBe(t.events);
  });

  it("a task its owner keeps is read back from the repository", async () => {
    const s = await setup({ release: false });
    const t = task();
    change(s.persistence, t, "completed");
    await s.persistence.drain();
    const loaded = await s.persistence.load(t.state.id);
    expect(loaded?.events).not.toBe(t.events);
    expect(loaded?.state.status).toBe("completed");
  });

  it("a quiet task gets its document from the timer once it is old enough", async () => {
    const s = await setup({ materializeAfterMs: 40 });
    const t = task();
    change(s.persistence, t);
    await s.persistence.drain();
    expect(t.stored).toBe("wal");
    await sleep(150);
    await s.persistence.drain();
    expect(t.stored).toBe("doc");
    expect(s.writes).toEqual([[`${t.state.id}:1`], [`${t.state.id}:1`]]);
  });

  it("a failed write rejects its waiters and marks the persistence unhealthy", async () => {
    const s = await setup();
    const t = task();
    change(s.persistence, t);
    s.repository.persist = () => Promise.reject(new Error("disk full"));
    await expect(s.persistence.durable(t)).rejects.toThrow("disk full");
    expect(s.persistence.healthy).toBe(false);
  });
});
