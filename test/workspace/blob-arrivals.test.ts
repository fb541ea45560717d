import { existsSync, readdirSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import { openBlobStore, type BlobStore } from "../../src/workspace/blob-store.js";
import { materializeTree } from "../../src/workspace/materialize.js";
import { blobDigest, buildManifest, type Manifest } from "../../src/workspace/manifest.js";
import { BlobArrivals } from "../../node/workspaces/blob-arrivals.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ store: BlobStore; target: string; work: string; manifest: Manifest; files: Uint8Array[] }> {
  const dir = tempDir("cc-arrivals-");
  cleanups.push(() => dir.remove());
  const store = await openBlobStore({ dir: join(dir.path, "blobs"), fsync: false });
  cleanups.push(() => store.close());
  const files = Array.from({ length: 6 }, (_, i) => randomBytes(1000 + i));
  const manifest = buildManifest(files.map((bytes, i) => ({ path: `src/f${i}.txt`, kind: "file" as const, executable: false, size: bytes.byteLength, chunks: [blobDigest(bytes)] })));
  return { store, target: join(dir.path, "work", "tree"), work: join(dir.path, "work"), manifest, files };
}

/** Turns of the event loop, for the materialiser to reach its next wait. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe("materialising a tree while its blobs arrive", () => {
  it("writes each file once its blob is stored, whatever order they come in, and reads held ones from the store", async () => {
    const { store, target, manifest, files } = await setup();
    await store.put(files[0]!);
    const arrivals = new BlobArrivals(store, "t");
    const making = materializeTree(manifest, target, (d) => arrivals.read(d), { readsVerified: true });
    await settle();
    // The materialiser waits for f1 while later blobs arrive first.
    for (const i of [5, 3, 1, 2, 4]) await arrivals.sink.putVerifiedAll([[blobDigest(files[i]!), files[i]!]]);
    arrivals.end();
    await making;
    files.forEach((bytes, i) => expect(readFileSync(join(target, "src", `f${i}.txt`)).equals(bytes)).toBe(true));
    files.forEach((bytes) => expect(store.has(blobDigest(bytes))).toBe(true));
  });

  it("hands over a blob that arrived ahead of its reader as received, without reading it back from the store", async () => {
    const { store, target, manifest, files } = await setup();
    let readBack = 0;
    const counted: BlobStore = { ...store, readSync: (d) => (readBack++, store.readSync(d)) };
    const arrivals = new BlobArrivals(counted, "t");
    for (const bytes of files) await arrivals.sink.putVerifiedAll([[blobDigest(bytes), bytes]]);
    arrivals.end();
    await materializeTree(manifest, target, (d) => arrivals.read(d), { readsVerified: true });
    files.forEach((bytes, i) => expect(readFileSync(join(target, "src", `f${i}.txt`)).equals(bytes)).toBe(true));
    expect(readBack).toBe(0);
  });

  it("a fetch that fails midway fails the tree with its error and leaves nothing, not even a partial directory", async () => {
    const { store, target, work, manifest, files } = await setup();
    const arrivals = new BlobArrivals(store, "t");
    const making = materializeTree(manifest, target, (d) => arrivals.read(d), { readsVerified: true });
    await arrivals.sink.putVerifiedAll([[blobDigest(files[0]!), files[0]!]]);
    await arrivals.sink.putVerifiedAll([[blobDigest(files[1]!), files[1]!]]);
    await settle();
    arrivals.fail(new CoderClawError("UNAVAILABLE", "the peer went away"));
    await expect(making).rejects.toThrow(/the peer went away/);
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(work)).toEqual([]);
  });

  it("a fetch that ends without a blob fails the file that needs it, naming the blob", async () => {
    const { store, target, manifest, files } = await setup();
    const arrivals = new BlobArrivals(store, "t");
    const making = materializeTree(manifest, target, (d) => arrivals.read(d), { readsVerified: true });
    for (const bytes of files.slice(0, 4)) await arrivals.sink.putVerifiedAll([[blobDigest(bytes), bytes]]);
    arrivals.end();
    await expect(making).rejects.toThrow(new RegExp(`src/f4.txt.*${blobDigest(files[4]!)} of tree t is not held here`));
    expect(existsSync(target)).toBe(false);
  });

  it("bytes that do not match the digest they arrive under are refused by the store and never written", async () => {
    const { store, manifest, files, target } = await setup();
    const arrivals = new BlobArrivals(store, "t");
    const making = materializeTree(manifest, target, (d) => arrivals.read(d), { readsVerified: true });
    await expect(arrivals.sink.putVerifiedAll([[blobDigest(files[0]!), files[1]!]])).rejects.toThrow(/hash to/);
    arrivals.fail(new CoderClawError("PROTOCOL", "cut off"));
    await expect(making).rejects.toThrow(/cut off/);
    expect(store.has(blobDigest(files[0]!))).toBe(false);
    expect(existsSync(target)).toBe(false);
  });

  it("blobs handed over together with one that does not match are none of them stored, nor handed to the reader", async () => {
    const { store, manifest, files, target } = await setup();
    const arrivals = new BlobArrivals(store, "t");
    const making = materializeTree(manifest, target, (d) => arrivals.read(d), { readsVerified: true });
    const together: Array<[string, Uint8Array]> = [
      [blobDigest(files[0]!), files[0]!],
      [blobDigest(files[1]!), files[2]!],
      [blobDigest(files[3]!), files[3]!],
    ];
    await expect(arrivals.sink.putVerifiedAll(together)).rejects.toMatchObject({ digest: blobDigest(files[1]!) });
    for (const [d] of together) expect(store.has(d)).toBe(false);
    expect(arrivals.holds(blobDigest(files[0]!))).toBe(false);
    arrivals.fail(new CoderClawError("PROTOCOL", "cut off"));
    await expect(making).rejects.toThrow(/cut off/);
    expect(existsSync(target)).toBe(false);
  });
});
