import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import type { TaskState } from "../../src/contract/types.js";
import { encodeTaskDoc, taskDocId, taskDocRoot, updateTaskDoc, type TaskDoc, type TaskRecord } from "../../src/engine/task-document.js";
import { newTaskId } from "../../src/engine/task-id.js";
import type { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { repositoryHomes } from "../helpers/task-repositories.js";

const { home, open } = repositoryHomes();

function record(status: TaskState["status"], sessionId?: string): TaskRecord {
  const state: TaskState = { id: newTaskId(), status, description: "from another node", createdAt: new Date() };
  if (sessionId !== undefined) state.sessionId = sessionId;
  return { request: { description: state.description, input: "x" }, state, events: [] };
}

/** What a peer sends: the whole document as changes, applied as a remote update. */
const receive = (store: LevelDocumentStore, doc: A.Doc<TaskDoc>): Promise<unknown> =>
  store.update<TaskDoc>(taskDocId(A.toJS(doc).id.toString()), (current) => A.loadIncremental(current ?? A.init<TaskDoc>(), A.save(doc)), "remote");

describe("task documents received from other nodes", () => {
  it("are indexed in the same batch as the document: listed right after, and after a crash that follows at once", async () => {
    const dir = home();
    const first = await open(dir);
    const running = record("running", "s1");
    const doc = A.load<TaskDoc>(encodeTaskDoc(taskDocRoot(running), "0a".repeat(16)).bytes);
    await receive(first.store, doc);
    expect(await first.repository.listIds()).toEqual([running.state.id]);
    expect(await first.repository.listIds({ status: "running" })).toEqual([running.state.id]);
    // No flush, no background work awaited: the process could die here.
    await first.db.close();

    const second = await open(dir);
    expect(await second.repository.listIds({ sessionId: "s1" })).toEqual([running.state.id]);
    expect(await second.repository.count()).toBe(1);

    const done: TaskState = { ...running.state, status: "completed", completedAt: new Date(), output: "ok" };
    await receive(second.store, updateTaskDoc(A.clone(doc), running.state, done, []));
    expect(await second.repository.listIds({ status: "running" })).toEqual([]);
    expect(await second.repository.listIds({ status: "completed" })).toEqual([running.state.id]);
    expect(await second.repository.count()).toBe(1);
    await second.db.close();

    const third = await open(dir);
    expect(await third.repository.listIds({ status: "completed" })).toEqual([running.state.id]);
    expect(await third.repository.rebuildIndexes()).toBe(1);
    expect(await third.repository.listIds({ status: "completed" })).toEqual([running.state.id]);
  });

  it("wait for the fields the index needs: a partial document is stored but listed only once it is whole", async () => {
    const dir = home();
    const { store, repository } = await open(dir);
    const whole = record("pending");
    const id = taskDocId(whole.state.id);
    const partial = A.change(A.init<Partial<TaskDoc>>(), (d) => {
      d.v = 2;
      d.id = new A.ImmutableString(whole.state.id);
    });
    await store.update<Partial<TaskDoc>>(id, () => partial, "remote");
    expect(await store.heads(id)).toBeDefined();
    expect(await repository.listIds()).toEqual([]);
    expect(await repository.count()).toBe(0);

    const rest = A.change(A.clone(partial), (d) => {
      const root = taskDocRoot(whole);
      d.status = new A.ImmutableString(root.status);
      d.spec = new A.ImmutableString(root.spec);
      d.events = [];
    });
    await store.update<Partial<TaskDoc>>(id, (current) => A.loadIncremental(current!, A.saveSince(rest, A.getHeads(partial))), "remote");
    expect(await repository.listIds({ status: "pending" })).toEqual([whole.state.id]);
    expect(await repository.count()).toBe(1);
  });
});
