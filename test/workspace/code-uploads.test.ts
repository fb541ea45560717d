import { join } from "node:path";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { CodeUploads } from "../../node/workspaces/code-uploads.js";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { SubmittedTrees } from "../../node/workspaces/submitted-trees.js";
import { openBlobStore, type BlobStore } from "../../src/workspace/blob-store.js";
import { decodeBlobFrames, encodeBlobFrames } from "../../src/workspace/blob-frames.js";
import { blobDigest, blobsOf, buildManifest, DEFAULT_MANIFEST_LIMITS, type Manifest } from "../../src/workspace/manifest.js";
import { splitManifest } from "../../src/workspace/manifest-pieces.js";
import { tempDir } from "../helpers/temp-dir.js";
import { countingReads } from "../helpers/counting-store.js";
import { encodeCanonical } from "../../identity/canonical.js";
import fc from "fast-check";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function store(quotaBytes = 64 * 1024 * 1024): Promise<BlobStore> {
  const dir = tempDir("cc-uploads-");
  const s = await openBlobStore({ dir: join(dir.path, "blobs"), quotaBytes, fsync: false });
  cleanups.push(() => dir.remove(), () => s.close());
  return s;
}

/** A tree of `files` files of `size` bytes each, with its pieces and blobs. */
function treeOf(files: number, size: number, seed = 0): { tree: string; index: Uint8Array; blobs: Array<[string, Uint8Array]>; manifest: Manifest; pieces: string[] } {
  const contents = Array.from({ length: files }, (_, i) => Buffer.alloc(size, `${seed}:${i}|`));
  const manifest = buildManifest(contents.map((bytes, i) => ({ kind: "file" as const, path: `f${i}`, executable: false, size: bytes.byteLength, chunks: [blobDigest(bytes)] })));
  const pieced = splitManifest(manifest);
  expect(blobsOf(manifest).size).toBe(files);
  return { tree: pieced.treeId, index: pieced.index, blobs: [...contents.map((b): [string, Uint8Array] => [blobDigest(b), b]), ...pieced.pieces.map((p): [string, Uint8Array] => [p.digest, p.bytes])], manifest, pieces: pieced.pieces.map((p) => p.digest) };
}

/** Uploads into a store of `quotaBytes`, adopted by a real CodeWorkspaces; `send` puts a tree as mallory and submits it. */
async function submitting(quotaBytes: number, resultRetentionMs?: number) {
  const s = await store(quotaBytes);
  const home = tempDir("cc-uploads-ws-");
  cleanups.push(() => home.remove());
  const submitted = await SubmittedTrees.open(join(home.path, "submitted"), () => undefined);
  const workspaces = new CodeWorkspaces({
    selfId: "node",
    dataDir: home.path,
    store: s,
    shared: new SharedTrees(),
    submitted,
    client: () => undefined,
    addSource: () => () => undefined,
    ...(resultRetentionMs !== undefined && { resultRetentionMs }),
  });
  const uploads = new CodeUploads({ store: s, adopt: (tree, manifest, pieces, artifacts, uploader) => workspaces.adoptUploaded(tree, manifest, pieces, artifacts, uploader), submitted: (uploader) => workspaces.uploadedHeld(uploader) });
  const send = async (one: ReturnType<typeof treeOf>, caller = "mallory"): Promise<void> => {
    await uploads.put(caller, one.blobs);
    await uploads.putTree(caller, one.tree, one.index);
    await uploads.submit(caller, one.tree);
  };
  return { s, uploads, send, workspaces, submitted };
}

describe("code uploaded over HTTP, per caller", () => {
  it("holds each caller to its budget and all callers to the node's; a submission frees the caller's budget and keeps its tree as the base of the next send", async () => {
    const s = await store();
    const adopted: string[] = [];
    const uploads = new CodeUploads({ store: s, maxCallerBytes: 60_000, maxTotalBytes: 90_000, adopt: async (tree, manifest) => (adopted.push(tree), { tree, bytes: 0, files: manifest.entries.length }) });
    const one = treeOf(3, 10_000);
    await uploads.put("alice", one.blobs);
    await expect(uploads.put("alice", treeOf(2, 10_000, 1).blobs)).rejects.toMatchObject({ code: "QUOTA", message: expect.stringMatching(/this session's uploads .* over its limit of 60000/) });
    await uploads.put("bob", treeOf(2, 10_000, 2).blobs);
    // Bob's own budget holds this one more; the node's does not.
    await expect(uploads.put("bob", treeOf(1, 10_000, 3).blobs)).rejects.toMatchObject({ code: "QUOTA", message: expect.stringMatching(/on this node, sent or submitted, would go over its limit of 90000/) });
    await uploads.putTree("alice", one.tree, one.index);
    await uploads.submit("alice", one.tree);
    expect(adopted).toEqual([one.tree]);
    // Submitted: alice may send again, and what she sent stays hers (nothing missing), not bob's.
    await uploads.put("alice", treeOf(2, 10_000, 4).blobs);
    const digests = one.blobs.map(([d]) => d);
    expect(await uploads.missing("alice", digests)).toEqual([]);
    expect(await uploads.missing("bob", digests)).toEqual(digests);
    // A tree is submitted once per put.
    await expect(uploads.submit("alice", one.tree)).rejects.toMatchObject({ code: "INVALID_INPUT", field: "tree" });
  });

  it("reads no more of a tree's pieces than a manifest may hold: an index naming one blob sent a hundred thousand times is refused, not read a hundred thousand times", async () => {
    const s = await store();
    const counted = countingReads(s);
    const limits = { ...DEFAULT_MANIFEST_LIMITS, maxManifestBytes: 4 * 1024 * 1024 };
    const uploads = new CodeUploads({ store: counted.store, limits, adopt: () => Promise.reject(new Error("not here")) });
    const blob = Buffer.alloc(1024 * 1024, "p");
    await uploads.put("mallory", [[blobDigest(blob), blob]]);
    // Within the index's limits (64 digests); without a bound, 10,000 would be 10 GB read into memory before any check.
    const index = encodeCanonical({ version: 1, pieces: Array.from({ length: 64 }, () => blobDigest(blob)) });
    const refused = await uploads.putTree("mallory", blobDigest(index), index).catch((err: unknown) => err);
    expect(counted.readBytes()).toBeLessThanOrEqual(limits.maxManifestBytes + blob.byteLength);
    expect(refused).toMatchObject({ code: "INVALID_INPUT", field: "index.pieces[4]", message: expect.stringMatching(/manifest limit of 4194304 bytes/) });
  });

  it("counts what submissions of uploaded trees keep against the session's limit and the node's: a session cannot fill the store, nor take the node's whole share, by submitting what it sent and sending as much again", async () => {
    const { s, send } = await submitting(400_000);
    // Each send is within the session's quarter of the quota; the submissions keep them all, for days: the session's own count
    // them, so that one session cannot take the node's whole share, and so do the node's.
    await send(treeOf(6, 10_000, 1));
    await expect(send(treeOf(6, 10_000, 2))).rejects.toMatchObject({ code: "QUOTA", message: expect.stringMatching(/this session's uploads, sent or submitted, would go over its limit of 100000/) });
    await send(treeOf(6, 10_000, 3), "bob");
    await expect(send(treeOf(6, 10_000, 4), "carol")).rejects.toMatchObject({ code: "QUOTA", message: expect.stringMatching(/on this node, sent or submitted, would go over its limit of 200000/) });
    expect(s.usage().bytes).toBeLessThanOrEqual(200_000);
  });

  it("counts each blob at 4 KiB at least: a session cannot make the node keep millions of blobs of a few bytes (each an entry and pins in memory), sent or submitted", async () => {
    const { uploads, send } = await submitting(4 * 1024 * 1024);
    // 5,000 blobs of 20 bytes: 100 KB of content, 20 MB counted, over the session's 1 MiB.
    await expect(uploads.put("mallory", treeOf(5000, 20, 1).blobs)).rejects.toMatchObject({ code: "QUOTA", message: expect.stringMatching(/this session's uploads/) });
    // 200 a tree, submitted in turn, go over the session's 1 MiB.
    await send(treeOf(200, 20, 2));
    await expect(send(treeOf(200, 20, 3))).rejects.toMatchObject({ code: "QUOTA", message: expect.stringMatching(/sent or submitted/) });
  });

  it("a tree submitted again while older submissions expire stays on record and pinned: the expiry reads each record in its tree's turn", async () => {
    const { s, send, workspaces, submitted } = await submitting(64 * 1024 * 1024, 50);
    const [a, b] = [treeOf(1, 100, 1), treeOf(1, 100, 2)];
    await send(a);
    await send(b);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // b is submitted again while a's expiry is under way: b's record is new by the time the expiry comes to it.
    const expiring = workspaces.expireResults();
    await workspaces.adoptUploaded(b.tree, b.manifest, b.pieces, undefined, "ab".repeat(16));
    await expiring;
    expect(submitted.has(a.tree)).toBe(false);
    expect(submitted.has(b.tree)).toBe(true);
    expect(s.pinnedBy(`submitted:${b.tree}`).has(b.tree)).toBe(true);
  });

  it("drops a caller's uploads once idle, and every upload a previous run left pinned", async () => {
    const s = await store();
    let now = 0;
    const uploads = new CodeUploads({ store: s, idleMs: 1000, now: () => now, adopt: () => Promise.reject(new Error("not here")) });
    const one = treeOf(2, 100);
    await uploads.put("alice", one.blobs);
    await uploads.putTree("alice", one.tree, one.index);
    now = 500;
    expect(await uploads.sweep()).toBe(0);
    now = 2000;
    expect(await uploads.sweep()).toBe(1);
    expect(s.holders()).toEqual([]);
    await expect(uploads.submit("alice", one.tree)).rejects.toMatchObject({ field: "tree" });

    await uploads.put("bob", one.blobs);
    expect(s.holders()).toHaveLength(1);
    await new CodeUploads({ store: s, adopt: () => Promise.reject(new Error("not here")) }).dropLeftovers();
    expect(s.holders()).toEqual([]);
  });

  it("keeps no manifest in memory for the trees a session put: four of them, each up to the manifest limit, would be held an hour per session", async () => {
    const s = await store(256 * 1024 * 1024);
    const uploads = new CodeUploads({ store: s, adopt: async (tree, manifest, pieces) => ({ tree, bytes: manifest.entries.length, files: pieces.length }) });
    // Empty files, so the pieces are all there is to send: 20,000 long paths, some 8 MB of manifest a tree.
    const trees = [1, 2, 3, 4].map((seed) => splitManifest(buildManifest(Array.from({ length: 20_000 }, (_, i) => ({ kind: "file" as const, path: `d${seed}/${"x".repeat(400)}${i}`, executable: false, size: 0, chunks: [] })))));
    for (const t of trees) await uploads.put("mallory", t.pieces.map((p) => [p.digest, p.bytes]));
    v8.setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    for (const t of trees) await uploads.putTree("mallory", t.treeId, t.index);
    gc();
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(8 * 1024 * 1024);
    // Joined again from the store when submitted.
    await expect(uploads.submit("mallory", trees[3]!.treeId)).resolves.toMatchObject({ tree: trees[3]!.treeId, bytes: 20_000 });
  }, 60_000);

  it("holds callers sending at once to the node's limit: each counts what the others are still storing", async () => {
    const s = await store();
    const uploads = new CodeUploads({ store: s, maxTotalBytes: 50_000, adopt: () => Promise.reject(new Error("not here")) });
    const sent = await Promise.allSettled([uploads.put("alice", treeOf(2, 10_000, 1).blobs), uploads.put("bob", treeOf(2, 10_000, 2).blobs)]);
    expect(sent.map((r) => r.status).toSorted()).toEqual(["fulfilled", "rejected"]);
    // The refused one took no room: what is left fits.
    await uploads.put("carol", treeOf(1, 5_000, 3).blobs);
  });

  it("a sweep leaves alone a caller that called while it ran: what the call sent stays that caller's", async () => {
    const s = await store();
    let now = 0;
    const uploads = new CodeUploads({ store: s, idleMs: 1000, now: () => now, adopt: () => Promise.reject(new Error("not here")) });
    const [alice, bob] = [treeOf(2, 100, 1), treeOf(2, 100, 2)];
    await uploads.put("alice", alice.blobs);
    await uploads.put("bob", bob.blobs);
    now = 2000;
    // Bob sends again while the sweep unpins alice's uploads: bob is no longer idle.
    const swept = uploads.sweep();
    await uploads.put("bob", bob.blobs);
    expect(await swept).toBe(1);
    expect(await uploads.missing("bob", bob.blobs.map(([d]) => d))).toEqual([]);
    await expect(uploads.putTree("bob", bob.tree, bob.index)).resolves.toMatchObject({ tree: bob.tree });
  });

  it("reads back every body of blobs it encodes, and refuses a body cut anywhere inside a frame", () => {
    const blob = fc.uint8Array({ maxLength: 300 }).map((b): [string, Uint8Array] => [blobDigest(b), b]);
    fc.assert(
      fc.property(fc.array(blob, { maxLength: 8 }), fc.nat(), (blobs, cutAt) => {
        const body = encodeBlobFrames(blobs);
        expect(decodeBlobFrames(body).map(([d, b]) => [d, Buffer.from(b)])).toEqual(blobs.map(([d, b]) => [d, Buffer.from(b)]));
        // Cut inside the body: a cut on a frame boundary is a shorter body of whole frames, any other is refused.
        const at = body.length === 0 ? 0 : cutAt % body.length;
        const boundaries = new Set(blobs.reduce((ends, [, b]) => [...ends, ends.at(-1)! + 36 + b.byteLength], [0]));
        if (boundaries.has(at)) expect(decodeBlobFrames(body.subarray(0, at))).toHaveLength([...boundaries].indexOf(at));
        else expect(() => decodeBlobFrames(body.subarray(0, at))).toThrow(/ends/);
      }),
    );
  });
});
