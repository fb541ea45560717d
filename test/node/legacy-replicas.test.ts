import * as A from "@automerge/automerge";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { deviceIdentityFromSeed } from "../../identity/index.js";
import { createQuarantine, createReplicaAuthority, quarantineUnsignedReplicas, TASK_WRITER_RULE } from "../../node/sync/index.js";
import { signHeads } from "../../protocols/sync/index.js";
import { encodeTaskDoc, taskDocId } from "../../src/engine/task-document.js";
import { newTaskId } from "../../src/engine/task-id.js";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(): Promise<{ db: Database; store: LevelDocumentStore }> {
  const dir = tempDir("cc-legacy-");
  const db = await openDatabase(dir.path);
  const store = new LevelDocumentStore(db, { path: dir.path });
  cleanups.push(() => dir.remove());
  cleanups.push(async () => {
    await store.close();
    await db.close();
  });
  return { db, store };
}

function taskBytes(id: string, executorId?: string): { bytes: Uint8Array; heads: string[] } {
  const spec = JSON.stringify({ description: "d", input: "x", createdAt: 1, ...(executorId && { executorId }) });
  return encodeTaskDoc({ id, status: "completed", spec, events: [JSON.stringify([{ seq: 1, type: "created", ts: 1, status: "pending" }])] }, "ab".repeat(16));
}

/** A home of device `self` holding task documents, each put as its executor would have written it, signed by `signer` or unsigned. */
async function replicaHome() {
  const { db, store } = await open();
  const self = deviceIdentityFromSeed(randomBytes(32));
  const other = deviceIdentityFromSeed(randomBytes(32));
  const authority = createReplicaAuthority({ identity: self, db, rules: [TASK_WRITER_RULE], mayWrite: () => true });
  const put = async (id: string, executor: string | undefined, signer?: typeof other): Promise<void> => {
    const { bytes, heads } = taskBytes(id, executor);
    await store.insert(taskDocId(id), bytes, heads, signer ? authority.recordOps(taskDocId(id), signHeads(signer, taskDocId(id), heads)) : []);
  };
  return { db, store, self, other, authority, put };
}

describe("replicas held from before signed replication", () => {
  it("sets aside, once, unsigned documents another device writes; keeps this node's own, those naming no writer, and signed replicas", async () => {
    const { db, store, self, other, authority, put } = await replicaHome();
    const quarantine = createQuarantine({ db, write: (ops) => store.write(ops) });
    const ids = { own: newTaskId(Date.now(), self.peerId), cli: newTaskId(), foreign: newTaskId(Date.now(), other.peerId), signed: newTaskId(Date.now(), other.peerId) };
    await put(ids.own, self.peerId);
    await put(ids.cli, undefined);
    await put(ids.foreign, other.peerId);
    await put(ids.signed, other.peerId, other);
    const set = (): Promise<number> => quarantineUnsignedReplicas({ store, db, authority, rules: [TASK_WRITER_RULE], quarantine, self: self.peerId });
    expect(await set()).toBe(1);
    const held: string[] = [];
    for await (const id of store.ids("task/")) held.push(id);
    expect(held.sort()).toEqual([ids.own, ids.cli, ids.signed].map(taskDocId).sort());
    const kept = await quarantine.list();
    expect(kept.map((q) => [q.id, q.writer])).toEqual([[taskDocId(ids.foreign), other.peerId]]);
    expect(kept[0]!.bytes.byteLength).toBeGreaterThan(0);
    // Once: a later unsigned replica (there are none by then, but a run must not repeat) is left to sync.
    await put(newTaskId(Date.now(), other.peerId), other.peerId);
    expect(await set()).toBe(0);
  });
});

describe("replicas read from storage", () => {
  it("are taken as state only while they carry their writer's valid signature over exactly the heads stored", async () => {
    const { db, store, self, other, authority, put } = await replicaHome();
    const repository = await LevelTaskRepository.open(db, store);
    repository.screenStored((id, heads, root) => authority.checkStored(id, heads, root));
    const ids = { own: newTaskId(Date.now(), self.peerId), signed: newTaskId(Date.now(), other.peerId), edited: newTaskId(Date.now(), other.peerId), wrongSigner: newTaskId(Date.now(), other.peerId) };
    await put(ids.own, self.peerId);
    await put(ids.signed, other.peerId, other);
    await put(ids.edited, other.peerId, other);
    await put(ids.wrongSigner, other.peerId, self);
    // Someone with the disk appends a change to a replica: its heads move past what the writer signed.
    await store.update<{ status: A.ImmutableString }>(taskDocId(ids.edited), (doc) => A.change(doc!, (d) => void (d.status = new A.ImmutableString("pending"))));
    expect((await repository.load(ids.own))?.state.id).toBe(ids.own);
    expect((await repository.load(ids.signed))?.state.executorId).toBe(other.peerId);
    await expect(repository.load(ids.edited)).rejects.toThrow(/heads are not those its writer .* signed/);
    await expect(repository.load(ids.wrongSigner)).rejects.toThrow(/signature does not verify|names .* as its writer/);
  });
});
