import * as A from "@automerge/automerge";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { deviceIdentityFromSeed } from "../../identity/index.js";
import { createReplicaAuthority, TASK_WRITER_RULE } from "../../node/sync/index.js";
import { signHeads } from "../../protocols/sync/index.js";
import { encodeTaskDoc, taskDocId } from "../../src/engine/task-document.js";
import { newTaskId } from "../../src/engine/task-id.js";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { WriteBatcher, type WriteOp } from "../../src/storage/write-batcher.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * Writes to LevelDB, then holds its answer: LevelDB makes a batch readable
 * (synchronous reads see it at once) before this process hears it was written,
 * and under load that moment is long. This makes it as long as a test needs.
 */
class HeardLateBatcher extends WriteBatcher {
  held: Promise<void> | undefined;
  override async write(ops: WriteOp[]): Promise<void> {
    await super.write(ops);
    await this.held;
  }
}

describe("a replica read while a newer signed version of it is being stored", () => {
  it("reads as the version it shows, not as damaged (the signature beside it is already the newer one)", async () => {
    const dir = tempDir("cc-window-");
    const db = await openDatabase(dir.path);
    const batcher = new HeardLateBatcher(db);
    const store = new LevelDocumentStore(db, { path: dir.path, batcher });
    cleanups.push(() => dir.remove());
    cleanups.push(async () => {
      await store.close();
      await db.close();
    });
    const self = deviceIdentityFromSeed(randomBytes(32));
    const writer = deviceIdentityFromSeed(randomBytes(32));
    const authority = createReplicaAuthority({ identity: self, db, rules: [TASK_WRITER_RULE], mayWrite: () => true });
    const repository = await LevelTaskRepository.open(db, store);
    repository.screenStored((id, heads, root) => authority.checkStored(id, heads, root));

    const taskId = newTaskId(Date.now(), writer.peerId);
    const id = taskDocId(taskId);
    const spec = JSON.stringify({ description: "d", input: "x", createdAt: 1, executorId: writer.peerId });
    const first = encodeTaskDoc({ id: taskId, status: "running", spec, events: [JSON.stringify([{ seq: 1, type: "created", ts: 1, status: "pending" }])] }, "ab".repeat(16));
    await store.insert(id, first.bytes, first.heads, authority.recordOps(id, signHeads(writer, id, first.heads)));
    expect((await repository.load(taskId))?.state.status).toBe("running");

    // The writer's next version, as a relay would hand it over: its changes and its signature.
    const next = A.change(A.load<{ status: string }>(first.bytes, { actor: "ab".repeat(16) }), (d) => {
      d.status = "completed";
    });
    const changes = A.saveSince(next, first.heads);
    const signature = signHeads(writer, id, A.getHeads(next));
    let hear!: () => void;
    batcher.held = new Promise((r) => (hear = r));
    cleanups.push(() => hear());
    const storing = store.update<unknown>(id, (current) => A.loadIncremental(current!, changes), "remote", { ops: () => authority.recordOps(id, signature) });
    await new Promise((r) => setTimeout(r, 50));

    // Written, not yet heard of: the cached document shows the older heads, the signature on disk is the newer one.
    expect((await repository.load(taskId))?.state.status).toBe("running");
    hear();
    await storing;
    expect((await repository.load(taskId))?.state.status).toBe("completed");
  });
});
