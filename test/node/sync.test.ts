import * as A from "@automerge/automerge";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { createSyncEngine, type SyncEngine } from "../../node/sync/index.js";
import { encodeFrame, PeerLimitError } from "../../protocols/framing/index.js";
import { createSyncCodec, SYNC_PROTOCOL } from "../../protocols/sync/index.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import type { DocumentChange, DocumentStore } from "../../src/storage/document-store.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { connect, connectAll, eventually, startNodes, stopAll } from "./helpers.js";
import { countTurns, mostPerTurn } from "../helpers/turns.js";

interface Peer {
  node: MeshLibp2p;
  store: LevelDocumentStore;
  db: Database;
  engine: SyncEngine;
  errors: Error[];
}

type Task = { status: string; note?: string; by?: string[] };

let peers: Peer[] = [];
let dirs: string[] = [];

afterEach(async () => {
  await Promise.allSettled(peers.map((p) => p.engine.stop()));
  await stopAll(peers.map((p) => p.node));
  await Promise.allSettled(peers.map(async (p) => {
    await p.store.close();
    await p.db.close();
  }));
  await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })));
  peers = [];
  dirs = [];
});

/**
 * `n` nodes with LevelDB stores and sync engines. `blocked` holds "i-j" pairs that
 * may not connect: the gater refuses them, which is how a partition is made.
 */
async function mesh(n: number, options: { members?: (i: number, peer: string) => boolean; maxSyncStates?: number; store?: (i: number, store: LevelDocumentStore) => DocumentStore } = {}) {
  const blocked = new Set<string>();
  const ids: string[] = [];
  const indexOf = (peer: string): number => ids.indexOf(peer);
  const nodes = await startNodes(n, { admit: (i) => (peer) => !blocked.has(`${Math.min(i, indexOf(peer))}-${Math.max(i, indexOf(peer))}`) });
  ids.push(...nodes.map((node) => node.peerId.toString()));
  for (const [i, node] of nodes.entries()) {
    const dir = await mkdtemp(join(tmpdir(), "coderclaw-sync-"));
    dirs.push(dir);
    const db = await openDatabase(dir);
    const store = new LevelDocumentStore(db, { path: dir });
    const errors: Error[] = [];
    const engine = await createSyncEngine({
      libp2p: node,
      store: options.store?.(i, store) ?? store,
      isMember: (peer) => options.members?.(i, peer) ?? true,
      ...(options.maxSyncStates === undefined ? {} : { maxSyncStatesPerPeer: options.maxSyncStates }),
      onError: (_peer, error) => errors.push(error),
    });
    peers.push({ node, store, db, engine, errors });
  }
  return { peers: [...peers], blocked, ids };
}

/** A `store` option of {@link mesh}: node `index` gets its store with method `name` replaced by what `replacement` makes of it. */
function replacing(index: number, name: keyof LevelDocumentStore, replacement: (target: LevelDocumentStore) => unknown) {
  return (i: number, store: LevelDocumentStore): DocumentStore =>
    i !== index ? store : new Proxy(store, { get: (target, prop, receiver) => (prop === name ? replacement(target) : (Reflect.get(target, prop, receiver) as unknown)) });
}

async function put(store: LevelDocumentStore, id: string, change: (doc: Task) => void): Promise<void> {
  await store.update<Task>(id, (doc) => A.change(doc ?? A.from<Task>({ status: "pending" }), change));
}

/** id -> sorted heads, for every replicated document a store holds. */
async function snapshot(store: LevelDocumentStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const id of store.ids("task/")) out.set(id, [...((await store.heads(id)) ?? [])].sort().join(","));
  return out;
}

async function converged(group: Peer[], expectedDocs: number): Promise<boolean> {
  const snaps = await Promise.all(group.map((p) => snapshot(p.store)));
  const first = snaps[0];
  if (first === undefined || first.size !== expectedDocs) return false;
  return snaps.every((s) => s.size === first.size && [...first].every(([id, h]) => s.get(id) === h));
}

describe("document sync", () => {
  it("replicates documents between 3 nodes and pushes later changes live", async () => {
    const { peers: [a, b, c] } = await mesh(3);
    if (a === undefined || b === undefined || c === undefined) throw new Error("mesh");
    for (let i = 0; i < 30; i++) await put(a.store, `task/a-${i}`, (d) => void (d.note = `a${i}`));
    for (let i = 0; i < 10; i++) await put(b.store, `task/b-${i}`, (d) => void (d.note = `b${i}`));
    await connectAll([a.node, b.node, c.node]);
    await eventually(() => converged([a, b, c], 40), 15_000, "initial convergence");

    await put(c.store, "task/a-3", (d) => void (d.status = "running"));
    await put(a.store, "task/new", (d) => void (d.note = "live"));
    await eventually(() => converged([a, b, c], 41), 15_000, "live convergence");
    const doc = await b.store.get<Task>("task/a-3");
    expect(doc?.status).toBe("running");
    expect((await c.store.get<Task>("task/new"))?.note).toBe("live");
    expect([a, b, c].flatMap((p) => p.errors)).toEqual([]);
    // One sync stream per pair of peers, in either direction.
    for (const p of [a, b, c]) {
      const syncStreams = p.node.getConnections().flatMap((conn) => conn.streams).filter((s) => s.protocol === "/coderclaw/sync/1.0.0");
      expect(syncStreams.length).toBe(2);
    }
  });

  it("pushes live changes as patches, with no Automerge sync exchange", async () => {
    const { peers: [a, b] } = await mesh(2);
    if (a === undefined || b === undefined) throw new Error("mesh");
    await put(a.store, "task/before", (d) => void (d.note = "old"));
    await connectAll([a.node, b.node]);
    await eventually(() => converged([a, b], 1), 15_000, "initial convergence");
    for (let i = 0; i < 20; i++) await put(a.store, `task/live-${i}`, (d) => void (d.note = `n${i}`));
    await put(b.store, "task/before", (d) => void (d.status = "running"));
    await put(b.store, "task/before", (d) => void (d.status = "completed"));
    await eventually(() => converged([a, b], 21), 15_000, "live convergence");
    expect((await a.store.get<Task>("task/before"))?.status).toBe("completed");
    // Automerge sync keeps a sync state per document it exchanged; patches need none.
    expect(a.engine.syncStates(b.node.peerId.toString())).toBe(0);
    expect(b.engine.syncStates(a.node.peerId.toString())).toBe(0);
    expect([a, b].flatMap((p) => p.errors)).toEqual([]);
  });

  it("stores documents new to the receiver as they came, a few per turn of the event loop", async () => {
    const turns = countTurns();
    const received: Array<{ turn: number; stored: boolean }> = [];
    const { peers: [a, b] } = await mesh(2, {
      store: replacing(1, "receiveNew", (target) => async (id: string, bytes: Uint8Array) => {
        const at = turns.now;
        const stored = await target.receiveNew(id, bytes);
        received.push({ turn: at, stored });
        return stored;
      }),
    });
    if (a === undefined || b === undefined) throw new Error("mesh");
    await connectAll([a.node, b.node]);
    // Once the first exchange is over, only the live push carries the burst.
    await put(a.store, "task/first", (d) => void (d.note = "first"));
    await eventually(() => converged([a, b], 1), 15_000, "first exchange");
    received.length = 0;
    // Written in one go, the 40 documents leave in one patch frame.
    await Promise.all(Array.from({ length: 40 }, (_, i) => put(a.store, `task/burst-${i}`, (d) => void (d.note = `n${i}`))));
    await eventually(() => converged([a, b], 41), 15_000, "burst replicated");
    turns.stop();
    // Each was stored as it came, none by the general path.
    expect(received.filter((r) => r.stored)).toHaveLength(40);
    expect(mostPerTurn(received.map((r) => r.turn))).toBeLessThanOrEqual(8);
    expect([a, b].flatMap((p) => p.errors)).toEqual([]);
  });

  it("falls back to Automerge sync when the peer lacks what a patch builds on", async () => {
    // A's pushes claim to build on heads nobody has: B cannot apply them and must sync instead.
    const unknownBase = "ab".repeat(32);
    const { peers: [a, b] } = await mesh(2, {
      store: replacing(0, "onChange", (target) => (listener: (change: DocumentChange) => void) =>
        target.onChange((c) => listener(c.before.length === 0 ? c : { ...c, before: [unknownBase] })),
      ),
    });
    if (a === undefined || b === undefined) throw new Error("mesh");
    await put(a.store, "task/x", (d) => void (d.note = "v1"));
    await connectAll([a.node, b.node]);
    await eventually(() => converged([a, b], 1), 15_000, "initial convergence");
    await put(a.store, "task/x", (d) => void (d.note = "v2"));
    await eventually(async () => (await b.store.get<Task>("task/x"))?.note === "v2", 15_000, "B gets the change by Automerge sync");
    await eventually(() => converged([a, b], 1), 15_000, "same heads");
    expect(b.engine.syncStates(a.node.peerId.toString())).toBeGreaterThan(0);
  });

  it("gives non-members nothing", async () => {
    const { peers: [a, b, outsider], ids } = await mesh(3, { members: (i, peer) => i !== 2 && peer !== ids[2] });
    if (a === undefined || b === undefined || outsider === undefined) throw new Error("mesh");
    for (let i = 0; i < 5; i++) await put(a.store, `task/secret-${i}`, (d) => void (d.note = "secret"));
    await put(outsider.store, "task/intruder", (d) => void (d.note = "spam"));
    await connectAll([a.node, b.node, outsider.node]);
    await eventually(() => converged([a, b], 5), 15_000, "members converge");
    await new Promise((r) => setTimeout(r, 300));
    expect((await snapshot(outsider.store)).size).toBe(1);
    expect(await a.store.get("task/intruder")).toBeUndefined();
    expect(a.engine.peers()).toEqual([b.node.peerId.toString()]);
  });

  it("opens the session again when the first attempt is refused, and when a connected peer becomes a member", async () => {
    let refusals = 1;
    const members = new Set<number>([0, 1]);
    const { peers: [a, b, c], ids } = await mesh(3, {
      members: (i, peer) => {
        const j = ids.indexOf(peer);
        if (!members.has(i) || !members.has(j)) return false;
        // The side that accepts (the larger id) refuses the first stream: a peer whose certificate arrives a moment late.
        if ((ids[i] ?? "") > peer && refusals > 0) {
          refusals--;
          return false;
        }
        return true;
      },
    });
    if (a === undefined || b === undefined || c === undefined) throw new Error("mesh");
    await put(a.store, "task/one", (d) => void (d.note = "one"));
    await connectAll([a.node, b.node, c.node]);
    await eventually(() => converged([a, b], 1), 15_000, "sync after a refused first attempt");
    expect(refusals).toBe(0);
    expect((await snapshot(c.store)).size).toBe(0);

    members.add(2);
    for (const p of [a, b, c]) p.engine.membersChanged();
    await eventually(() => converged([a, b, c], 1), 15_000, "sync with the new member on the same connections");
  });

  it("converges after a partition with changes on both sides", async () => {
    const { peers: [a, b, c], blocked } = await mesh(3);
    if (a === undefined || b === undefined || c === undefined) throw new Error("mesh");
    for (let i = 0; i < 20; i++) await put(a.store, `task/t-${i}`, (d) => void (d.by = ["a"]));
    await connectAll([a.node, b.node, c.node]);
    await eventually(() => converged([a, b, c], 20), 15_000, "before partition");

    blocked.add("0-1").add("0-2");
    await Promise.all([a.node.hangUp(b.node.peerId), a.node.hangUp(c.node.peerId)]);
    await eventually(() => a.engine.peers().length === 0, 5_000, "a isolated");

    for (let i = 0; i < 10; i++) await put(a.store, `task/t-${i}`, (d) => void (d.by ?? []).push("a2"));
    for (let i = 5; i < 15; i++) await put(b.store, `task/t-${i}`, (d) => void (d.by ?? []).push("b"));
    for (let i = 0; i < 5; i++) await put(a.store, `task/only-a-${i}`, (d) => void (d.note = "a"));
    for (let i = 0; i < 5; i++) await put(c.store, `task/only-c-${i}`, (d) => void (d.note = "c"));
    await eventually(() => converged([b, c], 25), 15_000, "majority side converges");
    expect((await snapshot(a.store)).size).toBe(25);

    blocked.clear();
    await connect(a.node, b.node);
    await connect(a.node, c.node);
    await eventually(() => converged([a, b, c], 30), 15_000, "after healing");
    const merged = await c.store.get<Task>("task/t-7");
    expect([...(merged?.by ?? [])].sort()).toEqual(["a", "a2", "b"]);
    expect([a, b, c].flatMap((p) => p.errors)).toEqual([]);
  });

  it("bounds sync state per peer and still converges", async () => {
    const { peers: [a, b] } = await mesh(2, { maxSyncStates: 8 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    for (let i = 0; i < 100; i++) await put(a.store, `task/x-${i}`, (d) => void (d.note = String(i)));
    await connect(a.node, b.node);
    await eventually(() => converged([a, b], 100), 15_000, "convergence");
    expect(a.engine.syncStates(b.node.peerId.toString())).toBeLessThanOrEqual(8);
    expect(b.engine.syncStates(a.node.peerId.toString())).toBeLessThanOrEqual(8);
  });
});

describe("document sync under abuse", () => {
  it("cuts off a member flooding the sync protocol and keeps syncing with the others", async () => {
    const { peers: [a, b, flooder] } = await mesh(3);
    if (a === undefined || b === undefined || flooder === undefined) throw new Error("mesh");
    await connectAll([a.node, b.node, flooder.node]);
    await flooder.engine.stop();
    const codec = createSyncCodec();
    const frame = encodeFrame(codec.encode({ t: "want", items: [] }), codec.maxMessageBytes);
    const burst = new Uint8Array(frame.byteLength * 5000);
    for (let i = 0; i < 5000; i++) burst.set(frame, i * frame.byteLength);
    const stream = await flooder.node.dialProtocol(a.node.peerId, SYNC_PROTOCOL);
    stream.send(burst);
    await eventually(() => a.errors.some((e) => e instanceof PeerLimitError), 10_000, "flood cut-off");
    await put(b.store, "task/after-flood", (d) => void (d.note = "still served"));
    await eventually(async () => (await a.store.get<Task>("task/after-flood"))?.note === "still served", 10_000, "sync after flood");
  });
});
