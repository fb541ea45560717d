import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import { PACK_BELOW_BYTES } from "../../src/workspace/blob-packs.js";
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
  it("stores a blob of 64 KiB or more under its SHA-256 at <2 hex>/<62 hex>, once, and reads it back", async () => {
    const { store, dir } = await fresh();
    const bytes = randomBytes(PACK_BELOW_BYTES);
    const digest = await store.put(bytes);
    expect(digest).toBe(sha256Hex(bytes));
    expect(await store.put(bytes)).toBe(digest);
    expect(same(readFileSync(join(dir, digest.slice(0, 2), digest.slice(2))), bytes)).toBe(true);
    expect(blobFiles(dir)).toEqual([digest]);
    expect(store.has(digest)).toBe(true);
    expect(same(await store.read(digest), bytes)).toBe(true);
    expect(store.usage()).toEqual({ bytes: PACK_BELOW_BYTES, entries: 1 });
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

  it("putVerifiedAll stores small and large blobs at once, a blob held already once, and none of them when one does not match", async () => {
    const { store, reopen } = await fresh(4 * MAX_BLOB_BYTES);
    const small = [randomBytes(10), randomBytes(PACK_BELOW_BYTES - 1), new Uint8Array(0)];
    const large = randomBytes(PACK_BELOW_BYTES + 1);
    const bad = [...small.map((b) => [sha256Hex(b), b] as const), [sha256Hex(large), randomBytes(PACK_BELOW_BYTES + 1)] as const];
    const err = await store.putVerifiedAll(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).digest).toBe(sha256Hex(large));
    expect(store.usage()).toEqual({ bytes: 0, entries: 0 });
    const all = [...small, large, small[0]!].map((b) => [sha256Hex(b), b] as const);
    await store.putVerifiedAll(all);
    const bytes = [...small, large].reduce((n, b) => n + b.byteLength, 0);
    expect(store.usage()).toEqual({ bytes, entries: 4 });
    for (const [d, b] of all) expect(same(await store.read(d), b)).toBe(true);
    const again = await reopen();
    expect(again.usage()).toEqual({ bytes, entries: 4 });
    for (const [d, b] of all) expect(same(await again.read(d), b)).toBe(true);
  });

  it("putVerifiedAll that cannot open a pack fails with that error once the writes it began have ended, so a write failing meanwhile is not an unhandled rejection", async () => {
    const home = tempDir("cc-blob-store-");
    cleanups.push(() => home.remove());
    const dir = home.path;
    // Without fsync a small blob goes straight into a pack (the path that opens one in the call).
    const store = await openBlobStore({ dir, fsync: false });
    cleanups.push(() => store.close().catch(() => undefined));
    // A fresh store opens its first pack on its first small blob; a file where the packs' directory was makes that open fail, even for root.
    rmSync(join(dir, ".packs"), { recursive: true, force: true });
    writeFileSync(join(dir, ".packs"), "");
    // The large blob's own write is begun first, and fails the same way (a file where its directory goes).
    const large = randomBytes(PACK_BELOW_BYTES + 1);
    writeFileSync(join(dir, sha256Hex(large).slice(0, 2)), "");
    const small = randomBytes(100);
    const err = await store.putVerifiedAll([[sha256Hex(large), large], [sha256Hex(small), small]]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ENOTDIR", path: expect.stringContaining(".packs") });
    expect(store.has(sha256Hex(large))).toBe(false);
    expect(store.has(sha256Hex(small))).toBe(false);
    // Had the large write been left running, its failure would surface now, unheard: vitest fails a run on it.
    await new Promise((resolve) => setTimeout(resolve, 50));
  });

  it("putVerifiedAll makes room under the quota as putVerified does, and refuses what cannot fit once every other blob is pinned", async () => {
    const { store } = await fresh(3 * 1000);
    const old = [randomBytes(1000), randomBytes(1000)];
    await store.putVerifiedAll(old.map((b) => [sha256Hex(b), b] as const));
    const next = [randomBytes(1000), randomBytes(1000)];
    await store.putVerifiedAll(next.map((b) => [sha256Hex(b), b] as const));
    for (const b of next) expect(store.has(sha256Hex(b))).toBe(true);
    expect(store.usage().bytes).toBeLessThanOrEqual(3000);
    await store.pin("task", [...next, ...old].map((b) => sha256Hex(b)));
    const more = [randomBytes(1000), randomBytes(1000)];
    await expect(store.putVerifiedAll(more.map((b) => [sha256Hex(b), b] as const))).rejects.toThrow(/quota/);
    expect(store.usage().bytes).toBeLessThanOrEqual(3000);
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
    const { store, dir, reopen } = await fresh(3 * PACK_BELOW_BYTES - 1);
    const old = await store.put(randomBytes(PACK_BELOW_BYTES));
    const recent = await store.put(randomBytes(PACK_BELOW_BYTES));
    const past = new Date(Date.now() - 3_600_000);
    const { utimesSync } = await import("node:fs");
    utimesSync(join(dir, old.slice(0, 2), old.slice(2)), past, past);
    const again = await reopen();
    await again.put(randomBytes(PACK_BELOW_BYTES));
    expect(again.has(old)).toBe(false);
    expect(again.has(recent)).toBe(true);
  });

  it("drops a blob damaged on disk when it is read, so it reads as missing", async () => {
    const { store, dir } = await fresh();
    const digest = await store.put(randomBytes(PACK_BELOW_BYTES));
    writeFileSync(join(dir, digest.slice(0, 2), digest.slice(2)), randomBytes(PACK_BELOW_BYTES));
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

  it("partial blobs stay within a quarter of the quota, the least recently written idle ones going first, and hold no file open between writes", async () => {
    // 100,000 bytes of partials at most, each counted as at least a 4 KiB block.
    const { store, dir, reopen } = await fresh(400_000);
    const partialDir = join(dir, ".partial");
    const openFiles = (): number => readdirSync("/proc/self/fd").length;
    const onDisk = (): number => readdirSync(partialDir).reduce((n, f) => n + statSync(join(partialDir, f)).size, 0);
    const before = openFiles();
    // What a peer that sends the start of every blob of a large tree and never the rest leaves behind.
    const digests = Array.from({ length: 200 }, () => sha256Hex(randomBytes(8)));
    for (const d of digests) expect(await store.appendPartial(d, 0, randomBytes(10_000))).toBe("partial");
    expect(openFiles() - before).toBeLessThan(10);
    expect(onDisk()).toBeLessThanOrEqual(100_000);
    expect(await store.partialOffset(digests.at(-1)!)).toBe(10_000);
    expect(await store.partialOffset(digests[0]!)).toBe(0);
    // The newest partial still resumes where it stopped.
    await expect(store.appendPartial(digests.at(-1)!, 10_000, randomBytes(10))).resolves.toBe("partial");
    // Tiny partials cannot get round the bound by their number.
    for (let i = 0; i < 200; i++) await store.appendPartial(sha256Hex(randomBytes(8)), 0, randomBytes(1));
    expect(readdirSync(partialDir).length).toBeLessThanOrEqual(Math.floor(100_000 / 4096));
    // One partial larger than the whole share is refused and dropped: the fetch starts that blob over instead of failing on it each time.
    const big = sha256Hex(randomBytes(8));
    await expect(store.appendPartial(big, 0, randomBytes(150_000))).rejects.toMatchObject({ code: "QUOTA" });
    expect(await store.partialOffset(big)).toBe(0);
    // After a restart the partials left are counted again: the bound holds across it.
    const again = await reopen();
    for (let i = 0; i < 50; i++) await again.appendPartial(sha256Hex(randomBytes(8)), 0, randomBytes(10_000));
    expect(onDisk()).toBeLessThanOrEqual(100_000);
  });

  it("removes leftover temporary files at open", async () => {
    const { dir, reopen } = await fresh();
    writeFileSync(join(dir, ".tmp", "leftover"), "x");
    await reopen();
    expect(existsSync(join(dir, ".tmp", "leftover"))).toBe(false);
  });
});

describe("blob store packs", () => {
  const packFiles = (dir: string): string[] => readdirSync(join(dir, ".packs")).sort();

  it("appends blobs under 64 KiB to one pack file, indexed: no file per blob, and all read back after a reopen", async () => {
    const { store, dir, reopen } = await fresh();
    const blobs = Array.from({ length: 50 }, (_, i) => randomBytes(1 + ((i * 7919) % (PACK_BELOW_BYTES - 1))));
    const digests = await Promise.all(blobs.map((b) => store.put(b)));
    expect(blobFiles(dir)).toEqual([]);
    expect(packFiles(dir)).toEqual(["1.pack"]);
    const total = blobs.reduce((n, b) => n + b.byteLength, 0);
    expect(statSync(join(dir, ".packs", "1.pack")).size).toBe(total);
    expect(store.usage()).toEqual({ bytes: total, entries: 50 });
    const again = await reopen();
    expect(again.usage()).toEqual({ bytes: total, entries: 50 });
    digests.forEach((d, i) => expect(same(again.readSync(d), blobs[i]!), `blob ${i}`).toBe(true));
    // A reopened store starts a new pack rather than appending to one that may end in a torn write.
    const more = await again.put(randomBytes(100));
    expect(packFiles(dir)).toEqual(["1.pack", "2.pack"]);
    expect(again.has(more)).toBe(true);
  });

  it("keeps the least recently used order of packed blobs across a reopen", async () => {
    const { store, reopen } = await fresh(2500);
    const old = await store.put(randomBytes(1000));
    // Distinct stamps: within one millisecond the two would tie.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const recent = await store.put(randomBytes(1000));
    const again = await reopen();
    await again.put(randomBytes(1000));
    expect(again.has(old)).toBe(false);
    expect(again.has(recent)).toBe(true);
  });

  it("drops a packed blob damaged on disk when it is read, and compaction leaves the damage behind", async () => {
    const { store, dir, reopen } = await fresh();
    const good = randomBytes(3000);
    const keep = await store.put(good);
    const hurt = await store.put(randomBytes(3000));
    await store.close();
    const fd = openSync(join(dir, ".packs", "1.pack"), "r+");
    writeSync(fd, randomBytes(10), 0, 10, 3000 + 100);
    closeSync(fd);
    const again = await reopen();
    expect(again.readSync(hurt)).toBeUndefined();
    expect(again.has(hurt)).toBe(false);
    expect(again.usage()).toEqual({ bytes: 3000, entries: 1 });
    await again.gc();
    expect(packFiles(dir)).toEqual(["2.pack"]);
    expect(statSync(join(dir, ".packs", "2.pack")).size).toBe(3000);
    expect(same(again.readSync(keep), good)).toBe(true);
  });

  it("gc rewrites a pack without the blobs it removed; pinned ones stay readable here and after a reopen", async () => {
    const { store, dir, reopen } = await fresh();
    const blobs = Array.from({ length: 40 }, (_, i) => randomBytes(500 + i));
    const digests = await Promise.all(blobs.map((b) => store.put(b)));
    await store.pin("task", digests.slice(0, 5));
    const result = await store.gc({ downToBytes: 0 });
    const kept = blobs.slice(0, 5).reduce((n, b) => n + b.byteLength, 0);
    expect(result.removed).toBe(35);
    expect(result.freedBytes).toBe(blobs.slice(5).reduce((n, b) => n + b.byteLength, 0));
    expect(packFiles(dir)).toEqual(["2.pack"]);
    expect(statSync(join(dir, ".packs", "2.pack")).size).toBe(kept);
    digests.slice(0, 5).forEach((d, i) => expect(same(store.readSync(d), blobs[i]!)).toBe(true));
    expect(store.has(digests[5]!)).toBe(false);
    const again = await reopen();
    expect(again.usage()).toEqual({ bytes: kept, entries: 5 });
    digests.slice(0, 5).forEach((d, i) => expect(same(again.readSync(d), blobs[i]!)).toBe(true));
    // Once nothing pins them, the last pack goes whole.
    await again.unpin("task");
    await again.gc({ downToBytes: 0 });
    expect(packFiles(dir)).toEqual([]);
  });

  it("evictions to make room under the quota rewrite packs too, so their dead space stays bounded", async () => {
    const { store, dir } = await fresh(20_000);
    // Ten rounds of 20 KB through a 20 KB quota: each round evicts the one before.
    for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 20 }, () => store.put(randomBytes(1000))));
    const onDisk = packFiles(dir).reduce((n, f) => n + statSync(join(dir, ".packs", f)).size, 0);
    expect(store.usage().bytes).toBeLessThanOrEqual(20_000);
    expect(onDisk).toBeLessThanOrEqual(20_000 / 0.75);
  });

  it("a gc that removes less than a quarter of a pack leaves it as it is, unless told to remove everything unpinned", async () => {
    const { store, dir } = await fresh();
    const digests = await Promise.all(Array.from({ length: 10 }, () => store.put(randomBytes(1000))));
    await store.pin("task", digests.slice(0, 8));
    const quotaLike = 9000;
    expect((await store.gc({ downToBytes: quotaLike })).removed).toBe(1);
    expect(packFiles(dir)).toEqual(["1.pack"]);
    expect((await store.gc({ downToBytes: 0 })).removed).toBe(1);
    expect(packFiles(dir)).toEqual(["2.pack"]);
    expect(statSync(join(dir, ".packs", "2.pack")).size).toBe(8000);
  });
});
