import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { encodeCanonical } from "../../identity/canonical.js";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { SubmittedTrees } from "../../node/workspaces/submitted-trees.js";
import { BlobClient, startBlobService } from "../../protocols/blobs/index.js";
import { openBlobStore, sha256Hex } from "../../src/workspace/blob-store.js";
import { DEFAULT_MANIFEST_LIMITS } from "../../src/workspace/manifest.js";
import { tempDir } from "../helpers/temp-dir.js";
import { countingReads } from "../helpers/counting-store.js";
import { connectAll, startNodes, stopAll } from "../node/helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
let nodes: MeshLibp2p[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stopAll(nodes);
  nodes = [];
});

/**
 * An executor's workspaces, whose store counts what it reads, and a task whose tree is `index`, served by a
 * submitter from `pieces` as any member may serve it.
 */
async function hostileTree(pieces: ReadonlyMap<string, Uint8Array>, index: Uint8Array, maxManifestBytes: number) {
  nodes = await startNodes(2);
  await connectAll(nodes);
  const [submitter, executor] = nodes as [MeshLibp2p, MeshLibp2p];
  const treeId = sha256Hex(index);
  const service = await startBlobService({
    libp2p: submitter,
    isMember: () => true,
    authorize: () => true,
    treeBlobs: (tree) => (tree === treeId ? new Set(pieces.keys()) : undefined),
    tree: (tree) => (tree === treeId ? index : undefined),
    sources: [{ has: (d) => pieces.has(d), read: async (d) => pieces.get(d) }],
  });
  cleanups.push(() => service.stop());

  const home = tempDir("cc-hostile-pieces-");
  cleanups.push(() => home.remove());
  const store = await openBlobStore({ dir: join(home.path, "blobs"), fsync: false });
  cleanups.push(() => store.close());
  const counted = countingReads(store);
  const client = new BlobClient({ libp2p: executor });
  cleanups.push(() => client.close());
  const ws = new CodeWorkspaces({
    selfId: executor.peerId.toString(),
    dataDir: home.path,
    store: counted.store,
    shared: new SharedTrees(),
    submitted: await SubmittedTrees.open(join(home.path, "workspaces", "submitted"), () => undefined),
    client: () => client,
    addSource: () => () => undefined,
    limits: { ...DEFAULT_MANIFEST_LIMITS, maxManifestBytes },
  });
  const task = { id: "0190a000-0000-7000-8000-000000000001", request: { description: "hostile", input: "", metadata: { workspace: { tree: treeId, bytes: 1, files: 1 } } }, submittedBy: submitter.peerId.toString() };
  return { prepared: ws.prepare(task, new AbortController().signal), sent: () => service.counters(executor.peerId.toString()).sent, store, readBytes: counted.readBytes };
}

describe("a manifest's pieces from a hostile submitter", () => {
  it("are fetched only up to the manifest limit: an index naming many large pieces is refused once they come to more, not after all of them came", { timeout: 60_000 }, async () => {
    // 40 pieces of 1 MiB (the blob limit), whose index is a few KiB: what the index says of them is only their digests.
    const pieces = new Map(Array.from({ length: 40 }, () => randomBytes(1024 * 1024)).map((b) => [sha256Hex(b), b] as const));
    const maxManifestBytes = 256 * 1024;
    const { prepared, sent, store } = await hostileTree(pieces, encodeCanonical({ version: 1, pieces: [...pieces.keys()] }), maxManifestBytes);
    await expect(prepared).rejects.toThrow(/manifest limit of 262144 bytes/);
    // What was in flight when the limit was passed (the client's 8 MiB, and what the streams buffer) comes on top; not the 40 MiB the index named.
    expect(sent()).toBeLessThan(16 * 1024 * 1024);
    expect(store.usage().bytes).toBeLessThanOrEqual(maxManifestBytes);
  });

  it("are read only up to the manifest limit: an index naming one piece of 1 MiB many times is refused once they come to more, not after all of them were read", { timeout: 60_000 }, async () => {
    const piece = randomBytes(1024 * 1024);
    const digest = sha256Hex(piece);
    const maxManifestBytes = 2 * 1024 * 1024;
    // 64 here; 100,000 (what an index may name) would be 100 GB read into memory at once.
    const { prepared, readBytes } = await hostileTree(new Map([[digest, piece]]), encodeCanonical({ version: 1, pieces: Array.from({ length: 64 }, () => digest) }), maxManifestBytes);
    const refused = await prepared.catch((err: unknown) => err);
    expect(readBytes()).toBeLessThanOrEqual(maxManifestBytes + piece.byteLength);
    expect(String(refused)).toMatch(/manifest limit of 2097152 bytes/);
  });
});
