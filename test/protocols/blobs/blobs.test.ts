import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { MeshLibp2p } from "../../../node/libp2p/create-libp2p.js";
import { BLOB_CHUNK_BYTES, BLOBS_PROTOCOL, BlobClient, createBlobsCodec, DEFAULT_TRANSFERS_PER_PEER, startBlobService, type BlobService, type BlobsMessage } from "../../../protocols/blobs/index.js";
import { encodeFrame, FramedChannel } from "../../../protocols/framing/index.js";
import { CoderClawError } from "../../../src/contract/errors.js";
import { DigestMismatchError, MAX_TREE_BYTES, openBlobStore, sha256Hex, type BlobStore } from "../../../src/workspace/blob-store.js";
import { tempDir } from "../../helpers/temp-dir.js";
import { connectAll, eventually, startNodes, stopAll } from "../../node/helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
let nodes: MeshLibp2p[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stopAll(nodes);
  nodes = [];
});

async function store(): Promise<BlobStore> {
  const dir = tempDir("cc-blobs-proto-");
  // Without fsync: a few thousand synced files take seconds on a shared CI disk, and syncing is the store's own test's concern.
  const s = await openBlobStore({ dir: dir.path, fsync: false });
  cleanups.push(() => dir.remove(), () => s.close());
  return s;
}

interface Tree {
  id: string;
  manifest: Uint8Array;
  digests: string[];
  bytes: number;
}

/** A tree of `blobs` put into `into`; the manifest is just the digests, which is all the protocol needs of it. */
async function makeTree(into: BlobStore, blobs: Uint8Array[]): Promise<Tree> {
  const digests: string[] = [];
  for (const b of blobs) digests.push(await into.put(b));
  const manifest = new TextEncoder().encode(JSON.stringify(digests));
  const id = sha256Hex(manifest);
  await into.putTree(id, manifest);
  return { id, manifest, digests, bytes: blobs.reduce((n, b) => n + b.byteLength, 0) };
}

/** Mixed sizes: mostly small files, some chunks of a large one. */
function mixedBlobs(n: number, large = 4): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => randomBytes(i < large ? 1024 * 1024 - i : 1 + ((i * 7919) % 3000)));
}

interface Setup {
  server: MeshLibp2p;
  clients: MeshLibp2p[];
  service: BlobService;
  serverStore: BlobStore;
  trees: Map<string, Tree>;
  peerErrors: Array<{ peer: string; error: Error }>;
  serverErrors: Array<{ peer: string; error: Error }>;
  client(i?: number, stallMs?: number): BlobClient;
}

/** Node 0 serves the blob protocol from a real store; the others ask. */
async function setup(options: { clients?: number; stallMs?: number; creditWaitMs?: number; authorize?: (peer: string, tree: string) => boolean; isMember?: (peer: string) => boolean } = {}): Promise<Setup> {
  nodes = await startNodes(1 + (options.clients ?? 1));
  await connectAll(nodes);
  const [server, ...clients] = nodes as [MeshLibp2p, ...MeshLibp2p[]];
  const serverStore = await store();
  const trees = new Map<string, Tree>();
  const serverErrors: Setup["serverErrors"] = [];
  const peerErrors: Setup["peerErrors"] = [];
  const service = await startBlobService({
    libp2p: server,
    isMember: (peer) => options.isMember?.(peer) ?? true,
    authorize: (peer, tree) => options.authorize?.(peer, tree) ?? true,
    treeBlobs: (tree) => {
      const t = trees.get(tree);
      return t === undefined ? undefined : new Set(t.digests);
    },
    tree: (tree) => serverStore.getTree(tree),
    sources: [serverStore],
    ...(options.stallMs !== undefined && { stallMs: options.stallMs }),
    ...(options.creditWaitMs !== undefined && { creditWaitMs: options.creditWaitMs }),
    onError: (peer, error) => serverErrors.push({ peer, error }),
  });
  cleanups.push(() => service.stop());
  const client = (i = 0, stallMs = options.stallMs): BlobClient => {
    const c = new BlobClient({ libp2p: clients[i]!, ...(stallMs !== undefined && { stallMs }), onPeerError: (peer, error) => peerErrors.push({ peer, error }) });
    cleanups.push(() => c.close());
    return c;
  };
  return { server, clients, service, serverStore, trees, peerErrors, serverErrors, client };
}

/** Registers a hand-written server of the blob protocol on `node`, answering each message with `answer`. */
async function hostileServer(node: MeshLibp2p, answer: (m: BlobsMessage, channel: FramedChannel<BlobsMessage>) => void): Promise<void> {
  await node.handle(BLOBS_PROTOCOL, (stream, connection) => {
    const channel = new FramedChannel<BlobsMessage>({ stream, codec: createBlobsCodec(), peer: connection.remotePeer.toString() });
    void (async () => {
      try {
        for await (const m of channel) answer(m, channel);
      } catch {
        // Cut off by the client, as the test expects.
      }
    })();
  });
}

async function same(s: BlobStore, digest: string, bytes: Uint8Array): Promise<boolean> {
  const held = await s.read(digest);
  return held !== undefined && Buffer.from(held).equals(bytes);
}

describe("blob protocol", () => {
  it("ships a tree of a few thousand blobs, then only what changed in its next version", { timeout: 60_000 }, async () => {
    const s = await setup();
    const blobs = mixedBlobs(3000);
    const tree = await makeTree(s.serverStore, blobs);
    s.trees.set(tree.id, tree);
    const client = s.client();
    const mine = await store();
    const peer = s.server.peerId.toString();

    expect(Buffer.from(await client.fetchTree(peer, tree.id)).equals(tree.manifest)).toBe(true);
    const progress: number[] = [];
    const first = await client.fetchBlobs(peer, tree.id, tree.digests, mine, { onProgress: (p) => progress.push(p.done) });
    expect(first).toEqual({ fetched: 3000, bytes: tree.bytes, unavailable: [] });
    expect(progress.at(-1)).toBe(3000);
    for (const [i, d] of tree.digests.entries()) expect(await same(mine, d, blobs[i]!)).toBe(true);
    const afterFirst = client.counters(peer);
    // Framing, request lists and envelopes cost a few percent of a tree of small files.
    expect(afterFirst.received).toBeGreaterThan(tree.bytes);
    expect(afterFirst.received).toBeLessThan(tree.bytes * 1.1);
    expect(s.service.counters(s.clients[0]!.peerId.toString())).toEqual({ sent: afterFirst.received, received: afterFirst.sent });

    // The next version changes three small files and one large chunk.
    const changed = [...blobs];
    for (const i of [0, 10, 500, 2999]) changed[i] = randomBytes(blobs[i]!.byteLength);
    const next = await makeTree(s.serverStore, changed);
    s.trees.set(next.id, next);
    const changedBytes = [0, 10, 500, 2999].reduce((n, i) => n + changed[i]!.byteLength, 0);
    await client.fetchTree(peer, next.id);
    const second = await client.fetchBlobs(peer, next.id, next.digests, mine);
    expect(second).toEqual({ fetched: 4, bytes: changedBytes, unavailable: [] });
    const moved = client.counters(peer).received - afterFirst.received;
    expect(moved).toBeLessThan(changedBytes + next.manifest.byteLength + 4096);
    expect(await client.fetchBlobs(peer, next.id, next.digests, mine)).toEqual({ fetched: 0, bytes: 0, unavailable: [] });
  });

  it("resumes a transfer cut off mid-stream without sending again what was stored", { timeout: 60_000 }, async () => {
    const s = await setup();
    // Sizes that are not whole chunks, so the cut lands inside blobs.
    const blobs = Array.from({ length: 12 }, (_, i) => randomBytes(1024 * 1024 - 4099 * (i + 1)));
    const tree = await makeTree(s.serverStore, blobs);
    s.trees.set(tree.id, tree);
    // A small window: data comes only as credit goes back, so the cut finds every transfer inside a blob.
    const client = new BlobClient({ libp2p: s.clients[0]!, maxBytesInFlightPerPeer: 1024 * 1024 });
    cleanups.push(() => client.close());
    const mine = await store();
    const peer = s.server.peerId.toString();
    let stored = 0;
    let cut = false;
    const interrupted = client.fetchBlobs(peer, tree.id, tree.digests, mine, {
      onProgress: (p) => {
        stored = p.bytes;
        if (!cut && p.bytes > 3.5 * 1024 * 1024) {
          cut = true;
          void s.clients[0]!.hangUp(s.server.peerId);
        }
      },
    });
    await expect(interrupted).rejects.toThrow();
    expect(stored).toBeGreaterThan(3.5 * 1024 * 1024);
    expect(stored).toBeLessThan(tree.bytes);
    const partials = readdirSync(`${mine.dir}/.partial`);
    expect(partials.length).toBeGreaterThan(0);

    const sentBefore = s.service.counters(s.clients[0]!.peerId.toString()).sent;
    const resumed = await client.fetchBlobs(peer, tree.id, tree.digests, mine);
    // Exactly the bytes the store did not hold: every partial blob continued from its offset.
    expect(resumed.bytes).toBe(tree.bytes - stored);
    expect(resumed.unavailable).toEqual([]);
    const sentAgain = s.service.counters(s.clients[0]!.peerId.toString()).sent - sentBefore;
    expect(sentAgain).toBeLessThan(tree.bytes - stored + 64 * 1024);
    for (const [i, d] of tree.digests.entries()) expect(await same(mine, d, blobs[i]!)).toBe(true);
    expect(readdirSync(`${mine.dir}/.partial`)).toEqual([]);
  });

  it("starts a blob over when the prefix an earlier transfer left does not verify, without blaming the peer", async () => {
    const s = await setup();
    const blobs = [randomBytes(200_000), randomBytes(5000)];
    const tree = await makeTree(s.serverStore, blobs);
    s.trees.set(tree.id, tree);
    const mine = await store();
    await mine.appendPartial(tree.digests[0]!, 0, randomBytes(1000));
    const client = s.client();
    const result = await client.fetchBlobs(s.server.peerId.toString(), tree.id, tree.digests, mine);
    expect(result).toEqual({ fetched: 2, bytes: tree.bytes, unavailable: [] });
    expect(await same(mine, tree.digests[0]!, blobs[0]!)).toBe(true);
    // Nor when the stream ends because this side closed it.
    await client.close();
    expect(s.peerErrors).toEqual([]);
  });

  it("refuses a tree the peer may not read, and a blob outside the tree named, alike whether held or not", async () => {
    const s = await setup({ authorize: (_peer, tree) => tree !== secretId });
    let secretId = "";
    const open = await makeTree(s.serverStore, mixedBlobs(5, 0));
    const secret = await makeTree(s.serverStore, mixedBlobs(5, 0));
    secretId = secret.id;
    s.trees.set(open.id, open);
    s.trees.set(secret.id, secret);
    const client = s.client();
    const mine = await store();
    const peer = s.server.peerId.toString();

    for (const attempt of [client.fetchTree(peer, secret.id), client.fetchBlobs(peer, secret.id, secret.digests, mine)]) {
      const err = await attempt.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CoderClawError);
      expect((err as CoderClawError).code).toBe("PERMISSION_DENIED");
    }
    // A blob the server holds but the tree does not name, and one it does not hold at all: the same refusal.
    const held = await client.fetchBlobs(peer, open.id, [secret.digests[0]!], mine).catch((e: unknown) => e as CoderClawError);
    const absent = sha256Hex(randomBytes(10));
    const notHeld = await client.fetchBlobs(peer, open.id, [absent], mine).catch((e: unknown) => e as CoderClawError);
    expect((held as CoderClawError).code).toBe("PERMISSION_DENIED");
    expect((notHeld as CoderClawError).message.replace(absent, "X")).toBe((held as CoderClawError).message.replace(secret.digests[0]!, "X"));
    expect(mine.usage().entries).toBe(0);
    // The refusals did not cost the channel: the tree it may read still comes.
    expect((await client.fetchBlobs(peer, open.id, open.digests, mine)).fetched).toBe(5);
  });

  it("serves members only, and resets the stream of a peer that stops being one", async () => {
    let members = new Set<string>();
    const s = await setup({ clients: 2, isMember: (peer) => members.has(peer) });
    const [member, stranger] = s.clients as [MeshLibp2p, MeshLibp2p];
    members = new Set([member.peerId.toString()]);
    const tree = await makeTree(s.serverStore, mixedBlobs(3, 0));
    s.trees.set(tree.id, tree);
    const peer = s.server.peerId.toString();
    await expect(s.client(1).fetchTree(peer, tree.id)).rejects.toThrow();
    const client = s.client(0);
    expect(Buffer.from(await client.fetchTree(peer, tree.id)).equals(tree.manifest)).toBe(true);
    members = new Set();
    await s.service.membersChanged();
    await expect(client.fetchTree(peer, tree.id)).rejects.toThrow();
    expect(stranger.peerId.toString()).not.toBe(member.peerId.toString());
  });

  it("reports blobs of a tree the server does not hold as unavailable and fetches the rest", async () => {
    const s = await setup();
    const blobs = mixedBlobs(6, 1);
    const tree = await makeTree(s.serverStore, blobs);
    s.trees.set(tree.id, tree);
    // The one blob of 1 MiB has a file of its own (smaller ones are packed).
    const gone = sha256Hex(blobs[0]!);
    const dir = s.serverStore.dir;
    const { rmSync } = await import("node:fs");
    rmSync(`${dir}/${gone.slice(0, 2)}/${gone.slice(2)}`);
    const mine = await store();
    const result = await s.client().fetchBlobs(s.server.peerId.toString(), tree.id, tree.digests, mine);
    expect(result.unavailable).toEqual([gone]);
    expect(result.fetched).toBe(5);
  });

  it("refuses a server whose bytes do not match their digest, storing nothing, and cuts it off", async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [server, asker] = nodes as [MeshLibp2p, MeshLibp2p];
    await hostileServer(server, (m, channel) => {
      if (m.t !== "get") return;
      const item = m.items[0]!;
      const wrong = randomBytes(100_000);
      void (async () => {
        for (let off = 0; off < wrong.byteLength; off += BLOB_CHUNK_BYTES) {
          await channel.send({ t: "data", rid: m.rid, d: item.d, off, size: wrong.byteLength, bytes: wrong.subarray(off, off + BLOB_CHUNK_BYTES) });
        }
        await channel.send({ t: "end", rid: m.rid });
      })().catch(() => undefined);
    });
    const errors: Array<{ peer: string; error: Error }> = [];
    const client = new BlobClient({ libp2p: asker, onPeerError: (peer, error) => errors.push({ peer, error }) });
    cleanups.push(() => client.close());
    const mine = await store();
    const digests = [sha256Hex(randomBytes(100_000)), sha256Hex(randomBytes(100_000))];
    const err = await client.fetchBlobs(server.peerId.toString(), sha256Hex(randomBytes(8)), digests, mine).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(digests).toContain((err as DigestMismatchError).digest);
    expect((err as Error).message).toContain(server.peerId.toString());
    expect(errors.map((e) => e.peer)).toContain(server.peerId.toString());
    expect(mine.usage().entries).toBe(0);
    for (const d of digests) expect(await mine.partialOffset(d)).toBe(0);
  });

  it("a server that sends the start of every blob and then misses it leaves partials within a quarter of the asker's quota, and no file open", { timeout: 60_000 }, async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [server, asker] = nodes as [MeshLibp2p, MeshLibp2p];
    // Each answer: a miss of the blob resumed (if any), then 10,000 bytes of the next one "of 1 MiB", then the end.
    await hostileServer(server, (m, channel) => {
      if (m.t !== "get") return;
      void (async () => {
        let i = 0;
        if (m.items[0]!.off > 0) await channel.send({ t: "miss", rid: m.rid, d: m.items[i++]!.d });
        const next = m.items[i];
        if (next !== undefined) await channel.send({ t: "data", rid: m.rid, d: next.d, off: 0, size: 1024 * 1024, bytes: randomBytes(10_000) });
        await channel.send({ t: "end", rid: m.rid });
      })().catch(() => undefined);
    });
    const client = new BlobClient({ libp2p: asker });
    cleanups.push(() => client.close());
    const dir = tempDir("cc-blobs-proto-");
    const mine = await openBlobStore({ dir: dir.path, fsync: false, quotaBytes: 400_000 });
    cleanups.push(() => dir.remove(), () => mine.close());
    const openFiles = (): number => readdirSync("/proc/self/fd").length;
    const before = openFiles();
    const digests = Array.from({ length: 200 }, () => sha256Hex(randomBytes(8)));
    const result = await client.fetchBlobs(server.peerId.toString(), sha256Hex(randomBytes(8)), digests, mine);
    expect(result.unavailable).toHaveLength(200);
    const partials = readdirSync(`${dir.path}/.partial`);
    expect(partials.length * 10_000).toBeLessThanOrEqual(100_000);
    expect(openFiles() - before).toBeLessThan(20);
  });

  it("cuts off a server that sends what was not asked, answers with nothing, or goes silent mid-transfer", async () => {
    nodes = await startNodes(4);
    await connectAll(nodes);
    const [flooder, staller, idler, asker] = nodes as [MeshLibp2p, MeshLibp2p, MeshLibp2p, MeshLibp2p];
    await hostileServer(idler, (m, channel) => {
      if (m.t === "get") void channel.send({ t: "end", rid: m.rid }).catch(() => undefined);
    });
    await hostileServer(flooder, (m, channel) => {
      if (m.t === "get") void channel.send({ t: "data", rid: m.rid, d: sha256Hex(randomBytes(4)), off: 0, size: 4, bytes: randomBytes(4) }).catch(() => undefined);
    });
    await hostileServer(staller, (m, channel) => {
      const item = m.t === "get" ? m.items[0]! : undefined;
      if (item !== undefined && m.t === "get") void channel.send({ t: "data", rid: m.rid, d: item.d, off: 0, size: 200_000, bytes: randomBytes(1000) }).catch(() => undefined);
    });
    const errors: Array<{ peer: string; error: Error }> = [];
    const client = new BlobClient({ libp2p: asker, stallMs: 500, onPeerError: (peer, error) => errors.push({ peer, error }) });
    cleanups.push(() => client.close());
    const mine = await store();
    const tree = sha256Hex(randomBytes(8));
    const started = Date.now();
    const [flood, stall, idle] = await Promise.allSettled([
      client.fetchBlobs(flooder.peerId.toString(), tree, [sha256Hex(randomBytes(9))], mine),
      client.fetchBlobs(staller.peerId.toString(), tree, [sha256Hex(randomBytes(9))], mine),
      client.fetchBlobs(idler.peerId.toString(), tree, [sha256Hex(randomBytes(9))], mine),
    ]);
    expect(String((idle as PromiseRejectedResult).reason)).toMatch(/an empty answer/);
    expect(flood.status).toBe("rejected");
    expect(String((flood as PromiseRejectedResult).reason)).toMatch(/was due/);
    expect(stall.status).toBe("rejected");
    expect(String((stall as PromiseRejectedResult).reason)).toMatch(/sent nothing for 500 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(errors.map((e) => e.peer).sort()).toEqual([flooder, staller, idler].map((n) => n.peerId.toString()).sort());
  });

  it("holds what a server sent of a manifest, not what it announced: a server announcing the limit and stalling costs the asker little", async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [server, asker] = nodes as [MeshLibp2p, MeshLibp2p];
    let sent = 0;
    await hostileServer(server, (m, channel) => {
      if (m.t === "tree") void channel.send({ t: "data", rid: m.rid, d: m.tree, off: 0, size: MAX_TREE_BYTES, bytes: randomBytes(1000) }).then(() => sent++, () => undefined);
    });
    const client = new BlobClient({ libp2p: asker, stallMs: 3000 });
    cleanups.push(() => client.close());
    const before = process.memoryUsage().arrayBuffers;
    // As many manifests at once as the peer's allowance lets run: each announced at the limit, each stalled after 1,000 bytes.
    const fetches = Array.from({ length: DEFAULT_TRANSFERS_PER_PEER }, () => client.fetchTree(server.peerId.toString(), sha256Hex(randomBytes(8))));
    const settled = Promise.allSettled(fetches);
    await eventually(() => sent === fetches.length, 10_000, "the announcements sent");
    await new Promise((r) => setTimeout(r, 100));
    const held = process.memoryUsage().arrayBuffers - before;
    const outcomes = await settled;
    expect(outcomes.map((o) => String((o as PromiseRejectedResult).reason))).toEqual(fetches.map(() => expect.stringMatching(/sent nothing for 3000 ms/)));
    expect(held, `${held} bytes held while ${DEFAULT_TRANSFERS_PER_PEER} manifests of ${MAX_TREE_BYTES} bytes were announced`).toBeLessThan(MAX_TREE_BYTES / 2);
  });

  it("sends no more than the window and the credit granted, and ends a transfer whose asker stops granting", async () => {
    const s = await setup({ creditWaitMs: 300 });
    const tree = await makeTree(s.serverStore, mixedBlobs(3, 3));
    s.trees.set(tree.id, tree);
    const stream = await s.clients[0]!.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    const channel = new FramedChannel<BlobsMessage>({ stream, codec: createBlobsCodec(), peer: s.server.peerId.toString() });
    cleanups.push(() => channel.close());
    let data = 0;
    let ended = false;
    void (async () => {
      for await (const m of channel) {
        if (m.t === "data" || m.t === "run") data += m.bytes.byteLength;
        if (m.t === "end") ended = true;
      }
    })().catch(() => undefined);
    await channel.send({ t: "get", rid: 1, tree: tree.id, items: tree.digests.map((d) => ({ d, off: 0 })), window: 100_000 });
    await eventually(() => data === 100_000, 5_000, "the window's worth of data");
    await channel.send({ t: "credit", rid: 1, bytes: 50_000 });
    await eventually(() => data === 150_000, 5_000, "the credit's worth of data");
    await eventually(() => ended, 5_000, "the transfer to end for want of credit");
    expect(data).toBe(150_000);
  });

  it("sends whole small blobs several to a run, within the credit, in the order asked for", async () => {
    const s = await setup({ creditWaitMs: 300 });
    const blobs = Array.from({ length: 300 }, (_, i) => randomBytes(i === 7 ? 0 : 200 + ((i * 7919) % 5000)));
    const tree = await makeTree(s.serverStore, blobs);
    s.trees.set(tree.id, tree);
    const stream = await s.clients[0]!.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    const channel = new FramedChannel<BlobsMessage>({ stream, codec: createBlobsCodec(), peer: s.server.peerId.toString() });
    cleanups.push(() => channel.close());
    const got: string[] = [];
    let messages = 0;
    let data = 0;
    let ended = false;
    void (async () => {
      for await (const m of channel) {
        if (m.t === "end") ended = true;
        // A blob larger than the credit left goes alone, in data messages.
        if (m.t === "data") {
          data += m.bytes.byteLength;
          if (m.off + m.bytes.byteLength === m.size) got.push(m.d);
        }
        if (m.t !== "run") continue;
        messages++;
        data += m.bytes.byteLength;
        let at = 0;
        m.ds.forEach((d, i) => {
          expect(sha256Hex(m.bytes.subarray(at, at + m.sizes[i]!))).toBe(d);
          at += m.sizes[i]!;
          got.push(d);
        });
      }
    })().catch(() => undefined);
    // A window of half the tree: the server stops short of it, whole blobs only, and goes on when credit comes.
    const half = Math.floor(tree.bytes / 2);
    await channel.send({ t: "get", rid: 1, tree: tree.id, items: tree.digests.map((d) => ({ d, off: 0 })), window: half });
    await eventually(() => data === half, 5_000, "the window's worth of the tree");
    await channel.send({ t: "credit", rid: 1, bytes: tree.bytes });
    await eventually(() => ended, 5_000, "the transfer to end");
    expect(got).toEqual(tree.digests);
    expect(data).toBe(tree.bytes);
    expect(messages).toBeLessThan(20);
  });

  it("cuts off a server whose run is out of order, past what was asked, over the credit, in the middle of a blob, malformed or wrong, storing nothing of it", async () => {
    const blobs = Array.from({ length: 3 }, () => randomBytes(5000));
    const [a, b, c] = blobs.map(sha256Hex) as [string, string, string];
    const joined = Buffer.concat(blobs);
    const forged = randomBytes(5000);
    const cases: Array<{ name: string; answer: (rid: number) => BlobsMessage[]; refused: RegExp; window?: number }> = [
      { name: "out of order", answer: (rid) => [{ t: "run", rid, ds: [b, a], sizes: [5000, 5000], bytes: Buffer.concat([blobs[1]!, blobs[0]!]) }], refused: /where .* was due/ },
      // One transfer asks for two blobs at a time (two rounds of batches for three).
      { name: "past the blobs asked for", answer: (rid) => [{ t: "run", rid, ds: [a, b, c], sizes: [5000, 5000, 5000], bytes: joined }], refused: /past every blob asked for/ },
      { name: "over the credit", answer: (rid) => [{ t: "run", rid, ds: [a, b], sizes: [5000, 5000], bytes: joined.subarray(0, 10_000) }], refused: /were granted/, window: 8_000 },
      { name: "in the middle of a blob", answer: (rid) => [{ t: "data", rid, d: a, off: 0, size: 5000, bytes: blobs[0]!.subarray(0, 100) }, { t: "run", rid, ds: [a], sizes: [4900], bytes: blobs[0]!.subarray(100) }], refused: /was due/ },
      { name: "sizes that do not add up", answer: (rid) => [{ t: "run", rid, ds: [a, b], sizes: [5000, 4000], bytes: Buffer.concat([blobs[0]!, blobs[1]!]) }], refused: /sizes add up|malformed|invalid/i },
      { name: "bytes of another blob", answer: (rid) => [{ t: "run", rid, ds: [a, b], sizes: [5000, 5000], bytes: Buffer.concat([blobs[0]!, forged]) }], refused: /do not hash to it/ },
    ];
    nodes = await startNodes(1 + cases.length);
    await connectAll(nodes);
    const asker = nodes[0]!;
    const errors: string[] = [];
    const client = new BlobClient({ libp2p: asker, maxTransfersPerPeer: 1, onPeerError: (peer) => errors.push(peer) });
    cleanups.push(() => client.close());
    for (const [i, kase] of cases.entries()) {
      const server = nodes[i + 1]!;
      await hostileServer(server, (m, channel) => {
        if (m.t !== "get") return;
        void (async () => {
          for (const message of kase.answer(m.rid)) await channel.send(message);
          await channel.send({ t: "end", rid: m.rid });
        })().catch(() => undefined);
      });
      const mine = await store();
      const narrow = kase.window === undefined ? client : new BlobClient({ libp2p: asker, maxTransfersPerPeer: 1, maxBytesInFlightPerPeer: kase.window, onPeerError: (peer) => errors.push(peer) });
      if (narrow !== client) cleanups.push(() => narrow.close());
      const err = await narrow.fetchBlobs(server.peerId.toString(), sha256Hex(randomBytes(8)), [a, b, c], mine).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(err), kase.name).toMatch(kase.refused);
      // A malformed message too: the framing layer ends the stream, and the peer is reported all the same.
      expect(errors, kase.name).toContain(server.peerId.toString());
      // Blobs before the fault may have been stored, and verified; nothing the fault carried is.
      for (const d of [a, b, c]) if (mine.has(d)) expect(await same(mine, d, blobs[[a, b, c].indexOf(d)]!), kase.name).toBe(true);
      if (kase.name !== "bytes of another blob") expect(mine.has(c), kase.name).toBe(false);
      expect(mine.has(sha256Hex(forged)), kase.name).toBe(false);
    }
  });

  it("cuts off a server that sends more than the credit granted while this side is busy storing", async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [server, asker] = nodes as [MeshLibp2p, MeshLibp2p];
    const first = randomBytes(64 * 1024);
    const second = randomBytes(1024 * 1024);
    const third = randomBytes(10);
    const byDigest = new Map([first, second, third].map((b) => [sha256Hex(b), b]));
    // Sends every blob asked for at once, whatever the window.
    await hostileServer(server, (m, channel) => {
      if (m.t !== "get") return;
      for (const { d } of m.items) {
        const bytes = byDigest.get(d)!;
        for (let off = 0; off < bytes.byteLength; off += BLOB_CHUNK_BYTES) void channel.send({ t: "data", rid: m.rid, d, off, size: bytes.byteLength, bytes: bytes.subarray(off, off + BLOB_CHUNK_BYTES) }).catch(() => undefined);
      }
    });
    const mine = await store();
    // A sink as slow as a loaded disk: it takes its time to store the first blob, while the second floods in.
    const slow = { ...mine, missing: (d: Iterable<string>) => mine.missing(d), partialOffset: (d: string) => mine.partialOffset(d), appendPartial: mine.appendPartial.bind(mine), putVerifiedAll: async (blobs: ReadonlyArray<readonly [string, Uint8Array]>) => { await new Promise((r) => setTimeout(r, 300)); await mine.putVerifiedAll(blobs); } };
    const errors: string[] = [];
    // One transfer with a 128 KiB window, whose first request names the first two blobs.
    const client = new BlobClient({ libp2p: asker, maxTransfersPerPeer: 1, maxBytesInFlightPerPeer: 128 * 1024, onPeerError: (peer) => errors.push(peer) });
    cleanups.push(() => client.close());
    const err = await client.fetchBlobs(server.peerId.toString(), sha256Hex(randomBytes(8)), [...byDigest.keys()], slow).catch((e: unknown) => e);
    expect(String(err)).toMatch(/were granted/);
    expect(errors).toEqual([server.peerId.toString()]);
  });

  it("reads on while a blob is being stored, so a slow write holds up no other blob of the transfer", async () => {
    const s = await setup();
    const tree = await makeTree(s.serverStore, mixedBlobs(40, 0));
    s.trees.set(tree.id, tree);
    const mine = await store();
    // The first blob's write finishes only once every other blob was stored (those handed over with it first): a fetch that waits for each write before reading on never gets there.
    const [first, ...rest] = tree.digests as [string, ...string[]];
    let others!: () => void;
    const othersStored = new Promise<void>((resolve) => (others = resolve));
    const held = { ...mine, missing: (d: Iterable<string>) => mine.missing(d), partialOffset: (d: string) => mine.partialOffset(d), appendPartial: mine.appendPartial.bind(mine), putVerifiedAll: async (blobs: ReadonlyArray<readonly [string, Uint8Array]>) => {
      await mine.putVerifiedAll(blobs.filter(([d]) => d !== first));
      if (rest.every((r) => mine.has(r))) others();
      const mineFirst = blobs.filter(([d]) => d === first);
      if (mineFirst.length > 0) {
        await othersStored;
        await mine.putVerifiedAll(mineFirst);
      }
    } };
    const client = new BlobClient({ libp2p: s.clients[0]!, maxTransfersPerPeer: 1 });
    cleanups.push(() => client.close());
    expect((await client.fetchBlobs(s.server.peerId.toString(), tree.id, tree.digests, held)).fetched).toBe(40);
    for (const d of tree.digests) expect(await same(mine, d, (await s.serverStore.read(d))!)).toBe(true);
  });

  it("refuses transfers beyond a peer's allowance with BUSY, and serves the rest", async () => {
    const s = await setup();
    const tree = await makeTree(s.serverStore, mixedBlobs(8, 8));
    s.trees.set(tree.id, tree);
    const stream = await s.clients[0]!.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    const channel = new FramedChannel<BlobsMessage>({ stream, codec: createBlobsCodec(), peer: s.server.peerId.toString() });
    cleanups.push(() => channel.close());
    // Six transfers at once, each asking for all eight large blobs: the allowance is four.
    for (let rid = 1; rid <= 6; rid++) void channel.send({ t: "get", rid, tree: tree.id, items: tree.digests.map((d) => ({ d, off: 0 })), window: 8 * 1024 * 1024 });
    const busy = new Set<number>();
    const ended = new Set<number>();
    for await (const m of channel) {
      if (m.t === "err") {
        expect(m.code).toBe("BUSY");
        busy.add(m.rid);
      }
      if (m.t === "end") ended.add(m.rid);
      if (busy.size + ended.size === 6) break;
    }
    expect(busy).toEqual(new Set([5, 6]));
    expect(ended).toEqual(new Set([1, 2, 3, 4]));
  });

  it("a cancelled transfer stops reading and holds its place in the peer's allowance until it has: cancelling opens no more transfers than the allowance", async () => {
    const s = await setup();
    // Blobs read from a slow source (a working tree, say), counting the reads in progress.
    const bytes = new Map(Array.from({ length: 64 }, () => randomBytes(100)).map((b) => [sha256Hex(b), b] as const));
    const digests = [...bytes.keys()];
    const manifest = new TextEncoder().encode(JSON.stringify(digests));
    const tree = { id: sha256Hex(manifest), manifest, digests, bytes: 6400 };
    s.trees.set(tree.id, tree);
    let reading = 0;
    let most = 0;
    let reads = 0;
    s.service.server.addSource({
      has: (d) => bytes.has(d),
      read: async (d) => {
        reads++;
        most = Math.max(most, ++reading);
        await new Promise((resolve) => setTimeout(resolve, 20));
        reading--;
        return bytes.get(d);
      },
    });
    const stream = await s.clients[0]!.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    const channel = new FramedChannel<BlobsMessage>({ stream, codec: createBlobsCodec(), peer: s.server.peerId.toString() });
    cleanups.push(() => channel.close());
    void (async () => {
      for await (const _ of channel) {
        // Drained: what the server answers does not matter here.
      }
    })().catch(() => undefined);
    // Each request asks for the whole tree and is cancelled at once: the server ends it before the next read.
    for (let rid = 1; rid <= 40; rid++) {
      await channel.send({ t: "get", rid, tree: tree.id, items: digests.map((d) => ({ d, off: 0 })), window: 1024 * 1024 });
      await channel.send({ t: "cancel", rid });
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(reading).toBe(0);
    expect(most).toBeLessThanOrEqual(4);
    expect(reads).toBeLessThanOrEqual(40);
  });

  it("cuts off a peer that stops reading, stalls mid-frame or sends an oversize frame, while another peer is served", { timeout: 60_000 }, async () => {
    const s = await setup({ clients: 4, stallMs: 1_000 });
    const tree = await makeTree(s.serverStore, mixedBlobs(400, 12));
    s.trees.set(tree.id, tree);
    const peer = s.server.peerId.toString();
    const [honest, reader, halfFrame, oversize] = s.clients as [MeshLibp2p, MeshLibp2p, MeshLibp2p, MeshLibp2p];

    // Asks for every large blob, then never reads: the server's sends back up until its stall time runs out.
    const stuck = await reader.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    stuck.pause();
    const codec = createBlobsCodec();
    stuck.send(encodeFrame(codec.encode({ t: "get", rid: 1, tree: tree.id, items: tree.digests.slice(0, 12).map((d) => ({ d, off: 0 })), window: 12 * 1024 * 1024 }), codec.maxMessageBytes));
    // Starts a frame and never finishes it.
    const half = await halfFrame.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    half.send(Uint8Array.of(0x80, 0x01, 1, 2, 3));
    // Declares a 16 MiB frame.
    const big = await oversize.dialProtocol(s.server.peerId, BLOBS_PROTOCOL);
    big.send(Uint8Array.of(0x80, 0x80, 0x80, 0x08));

    const mine = await store();
    const served = await s.client(0, 10_000).fetchBlobs(peer, tree.id, tree.digests, mine);
    expect(served.fetched).toBe(400);
    const misbehaving = [reader, halfFrame, oversize].map((n) => n.peerId.toString());
    await eventually(() => misbehaving.every((p) => s.serverErrors.some((e) => e.peer === p)), 10_000, "the three misbehaving peers cut off");
    expect(s.serverErrors).toHaveLength(3);
    const byPeer = new Map(s.serverErrors.map((e) => [e.peer, e.error.message]));
    expect(byPeer.get(oversize.peerId.toString())).toMatch(/exceeds the limit/);
    expect(byPeer.get(reader.peerId.toString())).toMatch(/did not read for 1000 ms/);
    expect(byPeer.get(halfFrame.peerId.toString())).toMatch(/stalled mid-frame/);
    expect(byPeer.has(honest.peerId.toString())).toBe(false);
  });
});
