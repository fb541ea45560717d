import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import type { TaskState } from "../../src/contract/types.js";
import { encodeTaskDoc, taskDocId, taskDocRoot, type TaskDoc, type TaskRecord } from "../../src/engine/task-document.js";
import { newTaskId } from "../../src/engine/task-id.js";
import type { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { repositoryHomes } from "../helpers/task-repositories.js";

const { home, open } = repositoryHomes();

let clock = Date.now();
function record(agentId: string): TaskRecord {
  const state: TaskState = { id: newTaskId(), status: "completed", description: "t", createdAt: new Date(clock++), agentId };
  return { request: { description: "t", input: "x", agentId }, state, events: [] };
}

/** Store tasks as the engine first does: write-ahead records, indexed in the same batch. */
async function persist(repository: LevelTaskRepository, records: TaskRecord[]): Promise<void> {
  await repository.persist(records.map((r) => ({ record: r, stored: "none", previous: undefined, newEvents: [], materialize: false })));
}

const scanAgent = async (repository: LevelTaskRepository, agentId: string): Promise<string[]> => (await repository.scanIds({ agentId }, 1000)).map((f) => f.id);
const newestFirst = (records: TaskRecord[]): string[] => records.map((r) => r.state.id).reverse();

describe("the agent index of task listings", () => {
  it("answers an agent filter with that agent's tasks only, its own and those received from other nodes", async () => {
    const dir = home();
    const { store, repository } = await open(dir);
    const mine = [record("review"), record("shell"), record("review"), record("echo")];
    await persist(repository, mine);
    // A document another node wrote, received by sync: indexed in the batch that stores it.
    const theirs = record("review");
    const doc = A.load<TaskDoc>(encodeTaskDoc(taskDocRoot(theirs), "0b".repeat(16)).bytes);
    await store.update<TaskDoc>(taskDocId(theirs.state.id), (current) => A.loadIncremental(current ?? A.init<TaskDoc>(), A.save(doc)), "remote");

    expect(await scanAgent(repository, "review")).toEqual(newestFirst([mine[0]!, mine[2]!, theirs]));
    expect(await scanAgent(repository, "shell")).toEqual([mine[1]!.state.id]);
    expect(await scanAgent(repository, "nobody")).toEqual([]);
  });

  it("fills the index for a home written before it, in the background; until then an agent filter scans every task", async () => {
    const dir = home();
    const first = await open(dir);
    const tasks = Array.from({ length: 1200 }, (_, i) => record(i % 3 === 0 ? "review" : "shell"));
    await persist(first.repository, tasks);
    // What a home of the version before the index holds: no agent entries, no mark that they are complete.
    const older: string[] = [];
    for await (const key of first.db.keys({ gte: "idx:agent:", lt: "idx:agent:\uffff" })) older.push(key);
    expect(older).toHaveLength(1200);
    await first.db.batch([...older, "meta:agentIndexed"].map((key) => ({ type: "del" as const, key })));
    await first.db.close();

    const second = await open(dir);
    // Not indexed yet: the filter falls back to every task by time (callers check each against the filter).
    expect(await scanAgent(second.repository, "review")).toHaveLength(1000);
    const written = record("review");
    await persist(second.repository, [written]);
    await second.repository.backfillAgentIndex((error) => {
      throw error;
    });
    const reviews = [...tasks.filter((_, i) => i % 3 === 0), written];
    expect((await second.repository.scanIds({ agentId: "review" }, 10_000)).map((f) => f.id)).toEqual(newestFirst(reviews));
    await second.db.close();

    // Done once: the next start uses the index at once.
    const third = await open(dir);
    expect((await third.repository.scanIds({ agentId: "review" }, 10_000)).map((f) => f.id)).toEqual(newestFirst(reviews));
  });

  it("leaves out of the index an agent id that could not be told apart in a key, and finds its tasks by scanning", async () => {
    const dir = home();
    const { db, store, repository } = await open(dir);
    const odd = record("a:b");
    const doc = A.load<TaskDoc>(encodeTaskDoc(taskDocRoot(odd), "0c".repeat(16)).bytes);
    await store.update<TaskDoc>(taskDocId(odd.state.id), (current) => A.loadIncremental(current ?? A.init<TaskDoc>(), A.save(doc)), "remote");
    await persist(repository, [record("a")]);
    const keys: string[] = [];
    for await (const key of db.keys({ gte: "idx:agent:", lt: "idx:agent:\uffff" })) keys.push(key);
    expect(keys.every((k) => k.startsWith("idx:agent:a:") && !k.includes(odd.state.id))).toBe(true);
    expect(await scanAgent(repository, "a:b")).toContain(odd.state.id);
  });
});
