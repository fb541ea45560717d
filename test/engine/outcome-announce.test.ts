import { afterEach, describe, expect, it } from "vitest";
import { createEchoAgent, StaticAgentRegistry } from "../../src/agents/builtin.js";
import type { TaskStatus } from "../../src/contract/types.js";
import { isTerminal } from "../../src/engine/state-machine.js";
import { TaskEngine } from "../../src/engine/task-engine.js";
import { LevelTaskRepository, type TaskChangeSet, type TaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * An engine over a real repository whose writes of an ended task wait until
 * `release()`: the window in which the outcome is recorded but not durable.
 */
async function heldEngine(announceBeforeDurable: boolean): Promise<{ engine: TaskEngine; held: () => boolean; release: () => void }> {
  const dir = tempDir();
  const db = await openDatabase(dir.path);
  cleanups.push(() => dir.remove(), () => db.close());
  const repository = await LevelTaskRepository.open(db, new LevelDocumentStore(db, { path: dir.path }));
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let holding = false;
  const held: TaskRepository = Object.create(repository, {
    persist: {
      value: async (changes: readonly TaskChangeSet[]) => {
        if (changes.some((c) => isTerminal(c.record.state.status))) {
          holding = true;
          await gate;
        }
        return repository.persist(changes);
      },
    },
  });
  const engine = await TaskEngine.open({ repository: held, agents: new StaticAgentRegistry([createEchoAgent()]), dataDir: dir.path, announceBeforeDurable });
  cleanups.push(() => engine.shutdown());
  return { engine, held: () => holding, release: open };
}

/** Statuses a follower of the task has been told by the time its ended state's write is under way. */
async function toldWhileHeld(announceBeforeDurable: boolean): Promise<TaskStatus[]> {
  const { engine, held, release } = await heldEngine(announceBeforeDurable);
  const task = await engine.submit({ description: "quick", input: "hi", agentId: "echo" });
  const told: TaskStatus[] = [];
  const following = (async () => {
    for await (const e of engine.streamEvents(task.id)) if (e.type === "status_changed") told.push(e.status);
  })();
  while (!held()) await new Promise((r) => setTimeout(r, 1));
  // Turns for the listeners to run, had they been told.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const whileHeld = [...told];
  release();
  await following;
  expect(told.at(-1)).toBe("completed");
  return whileHeld;
}

describe("when an outcome is told", () => {
  it("by default only once it is durable: no follower hears `completed` while its write is held", async () => {
    expect(await toldWhileHeld(false)).not.toContain("completed");
  });

  it("with announceBeforeDurable (for bench:schedule's comparison), at once, before the write lands", async () => {
    expect(await toldWhileHeld(true)).toContain("completed");
  });
});
