import { afterEach, describe, expect, it } from "vitest";
import { createEchoAgent, StaticAgentRegistry } from "../../src/agents/builtin.js";
import type { TaskSubmitRequest } from "../../src/contract/types.js";
import { TaskEngine } from "../../src/engine/task-engine.js";
import { homeTaskDocId, taskDocId } from "../../src/engine/task-document.js";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { ExecutionController } from "../helpers/controlled-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

const dirs: Array<{ remove: () => void }> = [];
const opened: Database[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) if (db.status === "open") await db.close();
  for (const d of dirs.splice(0)) d.remove();
});

const home = (request: Readonly<TaskSubmitRequest>): boolean => request.metadata?.home === true;

async function open(path: string, homeOnly?: typeof home, ctl = new ExecutionController()): Promise<{ store: LevelDocumentStore; repository: LevelTaskRepository; engine: TaskEngine; close: () => Promise<void> }> {
  const db = await openDatabase(path);
  opened.push(db);
  const store = new LevelDocumentStore(db, { path });
  const repository = await LevelTaskRepository.open(db, store, homeOnly === undefined ? {} : { homeOnly });
  const engine = await TaskEngine.open({ repository, agents: new StaticAgentRegistry([createEchoAgent(), ctl.agent("ctl", true)]), dataDir: path, materializeAfterMs: 0, shutdownGraceMs: 0 });
  return {
    store,
    repository,
    engine,
    close: async () => {
      await engine.shutdown();
      await store.close();
      await db.close();
    },
  };
}

async function ids(store: LevelDocumentStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const id of store.ids(prefix)) out.push(id);
  return out;
}

describe("tasks whose documents stay home", () => {
  it("are stored outside the replicated namespace, read, listed and re-indexed like any task", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await open(dir.path, home);
    const kept = await p.engine.submit({ description: "home", input: "a", agentId: "echo", metadata: { home: true } });
    const shared = await p.engine.submit({ description: "shared", input: "b", agentId: "echo" });
    await p.engine.idle();
    await p.store.flush();
    expect(await ids(p.store, "task/")).toEqual([taskDocId(shared.id)]);
    expect(await ids(p.store, homeTaskDocId(""))).toEqual([homeTaskDocId(kept.id)]);
    expect((await p.engine.getTask(kept.id))?.output).toBe("a");
    expect((await p.engine.listTasks({})).map((t) => t.id).sort()).toEqual([kept.id, shared.id].sort());
    expect(await p.repository.rebuildIndexes()).toBe(2);
    expect((await p.engine.listTasks({})).map((t) => t.id).sort()).toEqual([kept.id, shared.id].sort());
    await p.close();
  });

  it("one written in the replicated namespace by an older version stays there: never two documents for one task", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const ctl = new ExecutionController();
    const before = await open(dir.path, undefined, ctl);
    const task = await before.engine.submit({ description: "old", input: "a", agentId: "ctl", metadata: { home: true } });
    for (let i = 0; i < 100 && !before.store.holds(taskDocId(task.id)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(before.store.holds(taskDocId(task.id)), "its document written while it runs").toBe(true);
    await before.close();
    ctl.reset();

    // The upgraded node resumes it; its later changes go to the document it has.
    const after = await open(dir.path, home, ctl);
    // Recovery starts it again once its workspace is made (off the event loop): a busy machine takes more than a few turns.
    for (let i = 0; i < 500 && !ctl.isExecuting(task.id); i++) await new Promise((r) => setTimeout(r, 10));
    ctl.complete(task.id, "done");
    await after.engine.idle();
    expect((await after.engine.getTask(task.id))?.output).toBe("done");
    await after.store.flush();
    expect(await ids(after.store, homeTaskDocId(""))).toEqual([]);
    expect(await ids(after.store, "task/")).toEqual([taskDocId(task.id)]);
    await after.close();
    const again = await open(dir.path, home, ctl);
    expect(await again.engine.getTask(task.id), "the outcome, durable").toMatchObject({ status: "completed", output: "done" });
    await again.close();
  });
});
