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
import { connectAll, startNodes, stopAll } from "../node/helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
let nodes: MeshLibp2p[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stopAll(nodes);
  nodes = [];
});

describe("a manifest's pieces from a hostile submitter", () => {
  it("are fetched only up to the manifest limit: an index naming many large pieces is refused once they come to more, not after all of them came", { timeout: 60_000 }, async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [submitter, executor] = nodes as [MeshLibp2p, MeshLibp2p];
    // 40 pieces of 1 MiB (the blob limit), whose index is a few KiB: what the index says of them is only their digests.
    const pieces = new Map(Array.from({ length: 40 }, () => randomBytes(1024 * 1024)).map((b) => [sha256Hex(b), b] as const));
    const index = encodeCanonical({ version: 1, pieces: [...pieces.keys()] });
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
    const client = new BlobClient({ libp2p: executor });
    cleanups.push(() => client.close());
    const maxManifestBytes = 256 * 1024;
    const ws = new CodeWorkspaces({
      selfId: executor.peerId.toString(),
      dataDir: home.path,
      store,
      shared: new SharedTrees(),
      submitted: await SubmittedTrees.open(join(home.path, "workspaces", "submitted"), () => undefined),
      client: () => client,
      addSource: () => () => undefined,
      limits: { ...DEFAULT_MANIFEST_LIMITS, maxManifestBytes },
    });
    const task = { id: "0190a000-0000-7000-8000-000000000001", request: { description: "hostile", input: "", metadata: { workspace: { tree: treeId, bytes: 1, files: 1 } } }, submittedBy: submitter.peerId.toString() };
    await expect(ws.prepare(task, new AbortController().signal)).rejects.toThrow(/manifest limit of 262144 bytes/);
    // What was in flight when the limit was passed (the client's 8 MiB, and what the streams buffer) comes on top; not the 40 MiB the index named.
    expect(service.counters(executor.peerId.toString()).sent).toBeLessThan(16 * 1024 * 1024);
    expect(store.usage().bytes).toBeLessThanOrEqual(maxManifestBytes);
  });
});
