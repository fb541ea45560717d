import * as A from "@automerge/automerge";
import { afterEach, describe, expect, it } from "vitest";
import { createEchoAgent, StaticAgentRegistry } from "../../src/agents/builtin.js";
import { TaskEngine } from "../../src/engine/task-engine.js";
import { readTaskDoc, taskDocId, type TaskDoc } from "../../src/engine/task-document.js";
import { BOUND_TASK_IDS_SINCE, isTaskIdOf, newTaskId } from "../../src/engine/task-id.js";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { ExecutionController, settle } from "../helpers/controlled-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

const dirs: Array<{ remove: () => void }> = [];
const opened: Database[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) if (db.status === "open") await db.close();
  for (const d of dirs.splice(0)) d.remove();
});

interface Parts {
  db: Database;
  store: LevelDocumentStore;
  repository: LevelTaskRepository;
  engine: TaskEngine;
}

async function open(path: string, ctl: ExecutionController, materializeAfterMs: number): Promise<Parts> {
  const db = await openDatabase(path);
  opened.push(db);
  const store = new LevelDocumentStore(db, { path });
  const repository = await LevelTaskRepository.open(db, store);
  const agents = new StaticAgentRegistry([createEchoAgent(), ctl.agent("ctl", true), ctl.agent("once", false)]);
  const engine = await TaskEngine.open({ repository, agents, dataDir: path, materializeAfterMs, shutdownGraceMs: 0 });
  return { db, store, repository, engine };
}

async function walKeys(db: Database): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of db.keys({ gte: "wal:", lt: "wal:\uffff" })) keys.push(key.slice("wal:".length));
  return keys;
}

describe("write-ahead records", () => {
  it("a task that ends between two flushes is written as one document change and leaves no record behind", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await open(dir.path, new ExecutionController(), 60_000);
    const task = await p.engine.submit({ description: "quick", input: "hi", agentId: "echo" });
    expect(await walKeys(p.db)).toEqual([task.id]);
    await p.engine.idle();
    expect(await walKeys(p.db)).toEqual([]);
    const doc = await p.store.get<TaskDoc>(taskDocId(task.id));
    expect(A.getHistory(doc!)).toHaveLength(1);
    const record = readTaskDoc(doc!);
    expect(record.state).toMatchObject({ id: task.id, status: "completed", output: "hi", progress: 100 });
    expect(record.events.map((e) => e.status)).toEqual(["pending", "planning", "running", "completed"]);
    await p.engine.shutdown();
  });

  it("after a crash between submit and the document, recovery replays the records: nothing lost, nothing twice", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const ctl = new ExecutionController();
    let p = await open(dir.path, ctl, 60_000);
    const running = await p.engine.submit({ description: "resumable", input: "r", agentId: "ctl" });
    const cut = await p.engine.submit({ description: "not resumable", input: "n", agentId: "once" });
    const queued: string[] = [];
    // Beyond the default limit of 10 executions, the last ones wait in the queue.
    for (let i = 0; i < 10; i++) queued.push((await p.engine.submit({ description: `q${i}`, input: "q", agentId: "ctl" })).id);
    await settle();
    ctl.progress(running.id, 40);
    await settle();
    const accepted = [running.id, cut.id, ...queued];
    expect((await walKeys(p.db)).sort()).toEqual([...accepted].sort());
    // The crash: the database goes away with the engine still holding live tasks; every batch so far is durable.
    await p.db.close();
    ctl.reset();

    p = await open(dir.path, ctl, 60_000);
    await settle();
    expect(await walKeys(p.db)).toEqual([]);
    for (const id of accepted) {
      const doc = await p.store.get<TaskDoc>(taskDocId(id));
      expect(doc, id).toBeDefined();
      const { events } = readTaskDoc(doc!);
      expect(events[0]?.type).toBe("created");
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    }
    expect((await p.engine.getTask(running.id))?.status).toBe("running");
    expect((await p.engine.getTaskEvents(running.id)).some((e) => e.progress === 40)).toBe(true);
    expect(await p.engine.getTask(cut.id)).toMatchObject({ status: "failed", error: "interrupted by restart" });
    expect(ctl.starts.get(running.id)).toBe(2);
    const listed = (await p.engine.listTasks({ limit: 100 })).map((t) => t.id);
    expect(listed.sort()).toEqual([...accepted].sort());
    expect(await p.repository.count()).toBe(accepted.length);
    await p.engine.shutdown();
  });

  it("a quiet task gets its document once it is older than materializeAfterMs, and later changes append to it", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const ctl = new ExecutionController();
    const p = await open(dir.path, ctl, 30);
    const task = await p.engine.submit({ description: "slow", input: "s", agentId: "ctl" });
    for (let i = 0; i < 100 && (await walKeys(p.db)).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await walKeys(p.db)).toEqual([]);
    const before = readTaskDoc((await p.store.get<TaskDoc>(taskDocId(task.id)))!);
    expect(before.state.status).toBe("running");
    ctl.progress(task.id, 70);
    ctl.complete(task.id, "out");
    await p.engine.idle();
    const doc = (await p.store.get<TaskDoc>(taskDocId(task.id)))!;
    expect(A.getHistory(doc).length).toBeGreaterThan(1);
    const after = readTaskDoc(doc);
    expect(after.state).toMatchObject({ status: "completed", output: "out", progress: 100 });
    expect(after.events.slice(0, before.events.length)).toEqual(before.events);
    expect(after.events.map((e) => e.seq)).toEqual(after.events.map((_, i) => i + 1));
    await p.engine.shutdown();
  });

  it("rebuilds indexes from documents and write-ahead records alike", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const ctl = new ExecutionController();
    const p = await open(dir.path, ctl, 60_000);
    const done = await p.engine.submit({ description: "done", input: "d", agentId: "echo" });
    await p.engine.idle();
    const pending = await p.engine.submit({ description: "wal", input: "w", agentId: "ctl" });
    await settle();
    expect(await walKeys(p.db)).toEqual([pending.id]);
    expect(await p.repository.rebuildIndexes()).toBe(2);
    expect(await p.repository.listIds({ status: "completed" })).toEqual([done.id]);
    expect(await p.repository.listIds({ status: "running" })).toEqual([pending.id]);
    expect(await p.repository.activeTaskIds()).toEqual([pending.id]);
    await p.engine.shutdown();
  });
});

describe("task ids", () => {
  it("are UUIDv7 that sort in issue order, also within one millisecond", () => {
    const ids = Array.from({ length: 5000 }, () => newTaskId(1_700_000_000_000));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("name their executor: an id minted for one device is no other's, except ids from before binding", () => {
    const [v, m] = ["12D3KooWVictimVictimVictimVictimVictimVictimVictimVi", "12D3KooWMemberMemberMemberMemberMemberMemberMemberMe"];
    const ids = Array.from({ length: 2000 }, () => newTaskId(Date.now(), v));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => isTaskIdOf(id, v) && !isTaskIdOf(id, m))).toBe(true);
    // Unbound ids minted now are nobody's; those from before binding are taken from any executor.
    expect(isTaskIdOf(newTaskId(Date.now()), v)).toBe(false);
    const before = (BOUND_TASK_IDS_SINCE - 1).toString(16).padStart(12, "0");
    expect(isTaskIdOf(`${before.slice(0, 8)}-${before.slice(8)}-7000-8000-0123456789ab`, m)).toBe(true);
    expect(isTaskIdOf("not-a-uuid", v)).toBe(false);
  });
});
