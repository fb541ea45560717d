import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import { DigestMismatchError, MAX_BLOB_BYTES, openBlobStore, sha256Hex, type BlobStore } from "../../src/workspace/blob-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fresh(quotaBytes?: number): Promise<{ store: BlobStore; dir: string; reopen: (quota?: number) => Promise<BlobStore> }> {
  const dir = tempDir("cc-blob-store-");
  cleanups.push(() => dir.remove());
  let current = await openBlobStore({ dir: dir.path, ...(quotaBytes !== undefined && { quotaBytes }) });
  cleanups.push(() => current.close());
  return {
    store: current,
    dir: dir.path,
    reopen: async (quota) => {
      await current.close();
      current = await openBlobStore({ dir: dir.path, ...((quota ?? quotaBytes) !== undefined && { quotaBytes: quota ?? quotaBytes }) });
      return current;
    },
  };
}

/** Byte equality without vitest's element-by-element diffing, which takes seconds on a MiB. */
function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function blobFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(dir, d)).map((f) => d + f));
}

describe("blob store", () => {
  it("stores bytes under their SHA-256 at <2 hex>/<62 hex>, once, and reads them back", async () => {
    const { store, dir } = await fresh();
    const bytes = randomBytes(5000);
    const digest = await store.put(bytes);
    expect(digest).toBe(sha256Hex(bytes));
    expect(await store.put(bytes)).toBe(digest);
    expect(same(readFileSync(join(dir, digest.slice(0, 2), digest.slice(2))), bytes)).toBe(true);
    expect(blobFiles(dir)).toEqual([digest]);
    expect(store.has(digest)).toBe(true);
    expect(same(await store.read(digest), bytes)).toBe(true);
    expect(store.usage()).toEqual({ bytes: 5000, entries: 1 });
    const other = sha256Hex(randomBytes(8));
    expect(await store.read(other)).toBeUndefined();
    expect(await store.missing([digest, other, other])).toEqual([other]);
  });

  it("putVerified refuses bytes that do not match, naming the digest, and stores nothing", async () => {
    const { store, dir } = await fresh();
    const digest = sha256Hex(randomBytes(100));
    const err = await store.putVerified(digest, randomBytes(100)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toContain(digest);
    expect(blobFiles(dir)).toEqual([]);
    await expect(store.missing(["not-a-digest"])).rejects.toThrow(/64 lowercase hex/);
    await expect(store.put(new Uint8Array(MAX_BLOB_BYTES + 1))).rejects.toThrow(/exceeds the limit/);
  });

  it("stores manifests by tree id, verified, apart from blobs", async () => {
    const { store, reopen } = await fresh();
    const manifest = randomBytes(3 * MAX_BLOB_BYTES);
    const treeId = sha256Hex(manifest);
    await expect(store.putTree(treeId, randomBytes(10))).rejects.toThrow(treeId);
    await store.putTree(treeId, manifest);
    expect(store.has(treeId)).toBe(false);
    expect(same(await store.getTree(treeId), manifest)).toBe(true);
    const again = await reopen();
    expect(same(await again.getTree(treeId), manifest)).toBe(true);
  });

  it("resumes a partial blob across a reopen and commits it once it hashes to its digest", async () => {
    const { store, reopen } = await fresh();
    const bytes = randomBytes(300_000);
    const digest = sha256Hex(bytes);
    expect(await store.partialOffset(digest)).toBe(0);
    expect(await store.appendPartial(digest, 0, bytes.subarray(0, 100_000))).toBe("partial");
    await expect(store.appendPartial(digest, 50_000, bytes.subarray(50_000, 60_000))).rejects.toThrow(/does not continue/);
    const again = await reopen();
    expect(await again.partialOffset(digest)).toBe(100_000);
    expect(again.has(digest)).toBe(false);
    expect(await again.appendPartial(digest, 100_000, bytes.subarray(100_000))).toBe("complete");
    expect(again.has(digest)).toBe(true);
    expect(await again.partialOffset(digest)).toBe(0);
    expect(same(await again.read(digest), bytes)).toBe(true);
  });

  it("discards a partial blob that ends without matching its digest", async () => {
    const { store, dir } = await fresh();
    const digest = sha256Hex(randomBytes(1000));
    await store.appendPartial(digest, 0, randomBytes(500));
    await expect(store.appendPartial(digest, 500, randomBytes(500), { last: true })).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.partialOffset(digest)).toBe(0);
    expect(store.has(digest)).toBe(false);
    expect(readdirSync(join(dir, ".partial"))).toEqual([]);
    await store.appendPartial(digest, 0, randomBytes(MAX_BLOB_BYTES));
    await expect(store.appendPartial(digest, MAX_BLOB_BYTES, randomBytes(1))).rejects.toThrow(/exceed the blob limit/);
    expect(await store.partialOffset(digest)).toBe(0);
  });

  it("collects unpinned blobs least recently used first until under quota; pins survive a reopen", async () => {
    const { store, reopen } = await fresh(10_000);
    const a = await store.put(randomBytes(3000));
    const b = await store.put(randomBytes(3000));
    const c = await store.put(randomBytes(3000));
    await store.pin("task-1", [a, c]);
    await store.pin("task-2", [c]);
    expect(store.refCount(c)).toBe(2);
    await store.read(b);
    // A fourth blob needs 2,000 bytes: the least recently used unpinned one (b, the only unpinned one) goes.
    const d = await store.put(randomBytes(3000));
    expect(store.has(b)).toBe(false);
    expect([store.has(a), store.has(c), store.has(d)]).toEqual([true, true, true]);
    await store.pin("task-3", [d]);
    const err = await store.put(randomBytes(3000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CoderClawError);
    expect((err as CoderClawError).code).toBe("QUOTA");
    expect((err as Error).message).toMatch(/quota/);

    const again = await reopen(5000);
    expect(again.refCount(c)).toBe(2);
    expect([...again.pinnedBy("task-1")].sort()).toEqual([a, c].sort());
    await again.unpin("task-1");
    await again.unpin("task-3");
    expect(again.refCount(c)).toBe(1);
    const removed = await again.gc();
    expect(removed).toEqual({ removed: 2, freedBytes: 6000, partials: 0 });
    expect(again.has(c)).toBe(true);
    expect(again.usage().bytes).toBe(3000);
  });

  it("a pin made while the same holder is being unpinned survives, here and after a reopen", async () => {
    const { store, reopen } = await fresh();
    const a = sha256Hex(randomBytes(8));
    const b = sha256Hex(randomBytes(8));
    const c = sha256Hex(randomBytes(8));
    await store.pin("task", [a, c]);
    const unpinning = store.unpin("task");
    const pinning = store.pin("task", [a, b]);
    await Promise.all([unpinning, pinning]);
    expect([...store.pinnedBy("task")].sort()).toEqual([a, b].sort());
    expect([store.refCount(a), store.refCount(b), store.refCount(c)]).toEqual([1, 1, 0]);
    const again = await reopen();
    expect([...again.pinnedBy("task")].sort()).toEqual([a, b].sort());
  });

  it("least recently used order comes from the files' mtimes after a reopen", async () => {
    const { store, dir, reopen } = await fresh(6000);
    const old = await store.put(randomBytes(3000));
    const recent = await store.put(randomBytes(3000));
    const past = new Date(Date.now() - 3_600_000);
    const { utimesSync } = await import("node:fs");
    utimesSync(join(dir, old.slice(0, 2), old.slice(2)), past, past);
    const again = await reopen();
    await again.put(randomBytes(3000));
    expect(again.has(old)).toBe(false);
    expect(again.has(recent)).toBe(true);
  });

  it("drops a blob damaged on disk when it is read, so it reads as missing", async () => {
    const { store, dir } = await fresh();
    const digest = await store.put(randomBytes(4000));
    writeFileSync(join(dir, digest.slice(0, 2), digest.slice(2)), randomBytes(4000));
    expect(await store.read(digest)).toBeUndefined();
    expect(store.has(digest)).toBe(false);
    expect(await store.missing([digest])).toEqual([digest]);
    expect(store.usage().bytes).toBe(0);
    expect(existsSync(join(dir, digest.slice(0, 2), digest.slice(2)))).toBe(false);
  });

  it("without fsync, still stores and verifies the same way", async () => {
    const dir = tempDir("cc-blob-store-");
    cleanups.push(() => dir.remove());
    const store = await openBlobStore({ dir: dir.path, fsync: false });
    cleanups.push(() => store.close());
    const bytes = randomBytes(70_000);
    const digest = sha256Hex(bytes);
    await store.appendPartial(digest, 0, bytes.subarray(0, 1000));
    expect(await store.appendPartial(digest, 1000, bytes.subarray(1000))).toBe("complete");
    expect(same(await store.read(digest), bytes)).toBe(true);
    await expect(store.putVerified(sha256Hex(randomBytes(3)), bytes)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  it("gc removes partial blobs abandoned for longer than their allowed age, and keeps recent ones", async () => {
    const { store, dir, reopen } = await fresh();
    const old = sha256Hex(randomBytes(10));
    const recent = sha256Hex(randomBytes(10));
    await store.appendPartial(old, 0, randomBytes(5));
    await store.appendPartial(recent, 0, randomBytes(5));
    const again = await reopen();
    const { utimesSync } = await import("node:fs");
    const past = new Date(Date.now() - 2 * 24 * 3_600_000);
    utimesSync(join(dir, ".partial", old), past, past);
    expect((await again.gc()).partials).toBe(1);
    expect(await again.partialOffset(old)).toBe(0);
    expect(await again.partialOffset(recent)).toBe(5);
  });

  it("removes leftover temporary files at open", async () => {
    const { dir, reopen } = await fresh();
    writeFileSync(join(dir, ".tmp", "leftover"), "x");
    await reopen();
    expect(existsSync(join(dir, ".tmp", "leftover"))).toBe(false);
  });
});
