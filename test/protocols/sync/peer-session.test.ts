import * as A from "@automerge/automerge";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { deviceIdentityFromSeed, type DeviceIdentity } from "../../../identity/index.js";
import { memoryChannelPair, type MessageChannel } from "../../../protocols/framing/index.js";
import {
  createLivePush,
  createReplicaAuthority,
  createSyncCodec,
  PeerSession,
  signedPatch,
  signHeads,
  type RefusedChange,
  type SyncMessage,
  type WriterRule,
} from "../../../protocols/sync/index.js";
import { createEchoTexts, type EchoTexts } from "../../../protocols/sync/echo-texts.js";
import { createWantTracker, type WantTracker } from "../../../protocols/sync/want-tracker.js";
import { holdsHeads } from "../../../protocols/sync/peer-session.js";
import { createLogPositions, type LogPositions } from "../../../protocols/sync/log-positions.js";
import { openDatabase, type Database } from "../../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../../src/storage/level-document-store.js";
import { WriteBatcher, type WriteOp } from "../../../src/storage/write-batcher.js";
import { countReads } from "../../helpers/level-reads.js";
import { eventually } from "../../helpers/mesh.js";
import { tempDir } from "../../helpers/temp-dir.js";

/** Test documents name their writer in `owner`. */
type Doc = { owner: A.ImmutableString; status: string };
const OWNER_RULE: WriterRule = { prefix: "task/", writerOf: (_id, root) => (typeof root("owner") === "string" ? (root("owner") as string) : undefined) };

interface Side {
  identity: DeviceIdentity;
  db: Database;
  store: LevelDocumentStore;
  refused: RefusedChange[];
  errors: Error[];
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A batcher whose writes wait while `held` is set: the window in which a change is applied in memory but not yet durable. */
class GatedBatcher extends WriteBatcher {
  held: Promise<void> | undefined;
  override async write(ops: WriteOp[]): Promise<void> {
    await this.held;
    return super.write(ops);
  }
}

async function side(batcher?: (db: Database) => WriteBatcher): Promise<Side> {
  const dir = tempDir("cc-session-");
  const db = await openDatabase(dir.path);
  const store = new LevelDocumentStore(db, { path: dir.path, ...(batcher !== undefined && { batcher: batcher(db) }) });
  cleanups.push(async () => {
    await store.close();
    await db.close();
    dir.remove();
  });
  return { identity: deviceIdentityFromSeed(randomBytes(32)), db, store, refused: [], errors: [] };
}

/** Where a side stands in the other sides' change logs, in its own database. */
const positionsOf = (s: Side): LogPositions => createLogPositions(s.db, (ops) => s.store.write(ops), (e) => s.errors.push(e));

/**
 * Two sides' sessions over an in-memory channel through the sync codec; `a`
 * drives. With `positions`, each side keeps its position in the other's
 * change log; `sent` records what each side sent.
 */
function connect(a: Side, b: Side, positions?: [LogPositions, LogPositions], echoes?: [EchoTexts, EchoTexts]): { sessions: [PeerSession, PeerSession]; ends: [MessageChannel<SyncMessage>, MessageChannel<SyncMessage>]; sent: [SyncMessage[], SyncMessage[]] } {
  const ends = memoryChannelPair<SyncMessage>({ codec: createSyncCodec(), peers: [a.identity.peerId, b.identity.peerId] });
  const sent: [SyncMessage[], SyncMessage[]] = [[], []];
  ends.forEach((end, i) => {
    const send = end.send.bind(end);
    end.send = (m: SyncMessage) => {
      sent[i]!.push(m);
      return send(m);
    };
  });
  const make = (s: Side, channel: MessageChannel<SyncMessage>, initiator: boolean): PeerSession =>
    new PeerSession(channel, {
      ...(positions !== undefined && { positions: positions[s === a ? 0 : 1] }),
      ...(echoes !== undefined && { echoes: echoes[s === a ? 0 : 1] }),
      store: s.store,
      authority: createReplicaAuthority({ identity: s.identity, db: s.db, rules: [OWNER_RULE], mayWrite: () => true }),
      prefixes: ["task/"],
      targetFrameBytes: 64 * 1024,
      maxEntriesPerFrame: 100,
      initiator,
      onRefused: (r) => s.refused.push(r),
      onError: (e) => s.errors.push(e),
    });
  const sessions: [PeerSession, PeerSession] = [make(a, ends[0], true), make(b, ends[1], false)];
  for (const session of sessions) void session.run().catch(() => undefined);
  cleanups.push(async () => void (await Promise.all(ends.map((e) => e.close()))));
  return { sessions, ends, sent };
}

/**
 * A session of `s` (not driving) with a bare channel end, as a peer that
 * sends what a test tells it and records what `s` sends; `wants` is shared by
 * `s`'s sessions, `positions` are where `s` stands in its peers' change logs.
 */
function rawPeer(s: Side, name: string, extra: { wants?: WantTracker; positions?: LogPositions; echoes?: EchoTexts }): { end: MessageChannel<SyncMessage>; received: SyncMessage[]; ends: [MessageChannel<SyncMessage>, MessageChannel<SyncMessage>] } {
  const ends = memoryChannelPair<SyncMessage>({ codec: createSyncCodec(), peers: [s.identity.peerId, name] });
  const session = new PeerSession(ends[0], {
    store: s.store,
    authority: createReplicaAuthority({ identity: s.identity, db: s.db, rules: [OWNER_RULE], mayWrite: () => true }),
    prefixes: ["task/"],
    targetFrameBytes: 64 * 1024,
    maxEntriesPerFrame: 100,
    initiator: false,
    onRefused: (r) => s.refused.push(r),
    onError: (e) => s.errors.push(e),
    ...extra,
  });
  void session.run().catch(() => undefined);
  const received: SyncMessage[] = [];
  void (async () => {
    for await (const m of ends[1]) received.push(m);
  })().catch(() => undefined);
  cleanups.push(async () => void (await Promise.all(ends.map((e) => e.close()))));
  return { end: ends[1], received, ends };
}

const write = (s: Side, id: string, status: string) =>
  s.store.update<Doc>(id, (doc) => A.change(doc ?? A.from<Doc>({ owner: new A.ImmutableString(s.identity.peerId), status: "pending" }, { actor: "aa".repeat(16) }), (d) => void (d.status = status)));

describe("sync session over an in-memory channel", () => {
  it("reconciles by summary: the side that lacks documents gets them, signed by their writer, in a few frames", async () => {
    const [a, b] = [await side(), await side()];
    for (let i = 0; i < 150; i++) await write(a, `task/${String(i).padStart(4, "0")}`, `done ${i}`);
    connect(a, b);
    await eventually(async () => (await b.store.heads("task/0149")) !== undefined, 5000, "b holds every document");
    for (const id of ["task/0000", "task/0077", "task/0149"]) expect(await b.store.heads(id)).toEqual(await a.store.heads(id));
    expect((await b.store.get<Doc>("task/0077"))?.status).toBe("done 77");
    expect([a.refused, b.refused, a.errors, b.errors]).toEqual([[], [], [], []]);
  });

  it("pushes its own live changes as signed patches, and the receiver notes the peer each came from", async () => {
    const [a, b] = [await side(), await side()];
    await write(a, "task/live", "pending");
    const { sessions } = connect(a, b);
    await eventually(async () => (await b.store.heads("task/live")) !== undefined, 5000, "first reconciliation");
    const authority = createReplicaAuthority({ identity: a.identity, db: a.db, rules: [OWNER_RULE], mayWrite: () => true });
    const push = createLivePush({ sessions: new Map([[b.identity.peerId, sessions[0]]]), authority, debounceMs: 1 });
    const off = a.store.onChange((change) => push.changed(change));
    cleanups.push(async () => {
      off();
      push.stop();
    });
    await write(a, "task/live", "running");
    await write(a, "task/live", "completed");
    await eventually(async () => (await b.store.get<Doc>("task/live"))?.status === "completed", 5000, "the live change");
    // B's store names the peer each change came from, so B's own push would not send it back.
    const seen: Array<string | undefined> = [];
    b.store.onChange((change) => seen.push(change.from));
    await write(a, "task/live", "completed again");
    await eventually(() => seen.length > 0, 5000, "the change reaches b");
    expect(seen).toEqual([a.identity.peerId]);
  });

  it("asks one of the peers that announce a change it lacks, and another only when the first does not answer", async () => {
    const [w, x] = [await side(), await side()];
    await write(w, "task/announced", "running");
    const doc = (await w.store.get<Doc>("task/announced"))!;
    const heads = A.getHeads(doc);
    const wants = createWantTracker({ holds: (id, h) => holdsHeads(x.store, id, h), retryMs: 200 });
    cleanups.push(async () => wants.stop());
    const [first, second] = [rawPeer(x, "relay-1", { wants }), rawPeer(x, "relay-2", { wants })];
    const wanted = (): number => [...first.received, ...second.received].filter((m) => m.t === "want").length;

    await first.end.send({ t: "have", items: [{ id: "task/announced", heads }] });
    await second.end.send({ t: "have", items: [{ id: "task/announced", heads }] });
    await eventually(() => wanted() > 0, 5000, "a want");
    await new Promise((r) => setTimeout(r, 100));
    expect(first.received.filter((m) => m.t === "want")).toEqual([{ t: "want", items: [{ id: "task/announced", heads: [] }] }]);
    expect(second.received).toEqual([]);

    // The first relay never answers: past the retry time the second is asked, and its patch is taken.
    await eventually(() => second.received.some((m) => m.t === "want"), 5000, "the want to the second relay");
    await second.end.send({ t: "patch", items: [signedPatch("task/announced", [], A.save(doc), signHeads(w.identity, "task/announced", heads))] });
    await eventually(async () => (await x.store.get<Doc>("task/announced"))?.status === "running", 5000, "the patch taken");
    // Held now: announcing it again asks nothing.
    const before = wanted();
    await first.end.send({ t: "have", items: [{ id: "task/announced", heads }] });
    await new Promise((r) => setTimeout(r, 400));
    expect(wanted()).toBe(before);
    expect([x.refused, x.errors]).toEqual([[], []]);
  });

  it("drops a pending want, reported and not as an unhandled rejection, when the store closes before the want is settled", async () => {
    // As when a node stops while a change it asked for is on its way: the retry timer (or the patch) settles the want on a closed store.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    cleanups.push(async () => void process.off("unhandledRejection", onUnhandled));
    const [w, x] = [await side(), await side()];
    await write(w, "task/closing", "running");
    const heads = A.getHeads((await w.store.get<Doc>("task/closing"))!);
    const reported: Array<{ error: Error; peer: string }> = [];
    const wants = createWantTracker({ holds: (id, h) => holdsHeads(x.store, id, h), retryMs: 100, onError: (error, peer) => void reported.push({ error, peer }) });
    cleanups.push(async () => wants.stop());
    const relay = rawPeer(x, "relay-1", { wants });
    await relay.end.send({ t: "have", items: [{ id: "task/closing", heads }] });
    await eventually(() => relay.received.some((m) => m.t === "want"), 5000, "the want");

    await x.store.close();
    await x.db.close();
    await new Promise((r) => setTimeout(r, 400));
    expect(unhandled).toEqual([]);
    expect(reported.map((r) => [r.peer, r.error.message])).toEqual([["relay-1", expect.stringMatching(/not open/)]]);
    // Dropped, not retried: no second want went to the relay.
    expect(relay.received.filter((m) => m.t === "want")).toHaveLength(1);
  });

  it("sends a document read while a newer change of it is being written as it was read: changes that end at the heads it signs", async () => {
    let gate: GatedBatcher | undefined;
    const a = await side((db) => (gate = new GatedBatcher(db)));
    const b = await side();
    await write(a, "task/racing", "pending");
    const { sessions } = connect(a, b);
    await eventually(async () => (await b.store.heads("task/racing")) !== undefined, 5000, "first reconciliation");
    const first = (await b.store.heads("task/racing"))!;
    // No live push here: b stays at its first version while a writes a second, durable, then a third that waits to be.
    await write(a, "task/racing", "queued");
    const durable = (await a.store.heads("task/racing"))!;
    let open!: () => void;
    gate!.held = new Promise((r) => (open = r));
    cleanups.push(async () => open());
    const writing = write(a, "task/racing", "running");
    await new Promise((r) => setTimeout(r, 20));
    await sessions[0].push([{ id: "task/racing", since: first }]);
    await eventually(async () => b.refused.length > 0 || (await b.store.get<Doc>("task/racing"))?.status === "queued", 5000, "the durable version");
    expect(b.refused.map((r) => r.reason)).toEqual([]);
    expect(await b.store.heads("task/racing")).toEqual(durable);
    open();
    await writing;
    await sessions[0].push([{ id: "task/racing", since: durable }]);
    await eventually(async () => (await b.store.get<Doc>("task/racing"))?.status === "running", 5000, "the durable change");
    expect(b.refused).toEqual([]);
  });

  it("summarises a bucket that holds nothing in one byte, and still finds what differs", async () => {
    const [a, b] = [await side(), await side()];
    await write(b, "task/only-b", "done");
    const { sent } = connect(a, b);
    await eventually(async () => (await a.store.heads("task/only-b")) !== undefined, 5000, "a takes b's document");
    const summary = sent[0].find((m) => m.t === "summary")!;
    expect(createSyncCodec().encode(summary).byteLength).toBeLessThan(400);
    expect([a.refused, b.refused, a.errors, b.errors]).toEqual([[], [], [], []]);
  });

  it("tells its direct peers whole once, then only who came and went", async () => {
    const [a, b] = [await side(), await side()];
    const { sessions, sent } = connect(a, b);
    const told = (): SyncMessage[] => sent[0].filter((m) => m.t === "peers");
    await sessions[0].sendPeers(["x", "y", "z", b.identity.peerId]);
    await eventually(() => sessions[1].neighbours.size === 3, 5000, "the first list");
    await sessions[0].sendPeers(["x", "y", "z"]);
    await sessions[0].sendPeers(["w", "x", "y"]);
    await eventually(() => sessions[1].neighbours.has("w"), 5000, "the change");
    expect([...sessions[1].neighbours].sort()).toEqual(["w", "x", "y"]);
    expect(told()).toEqual([
      { t: "peers", peers: ["x", "y", "z"] },
      { t: "peers", peers: ["w"], delta: true, gone: ["z"] },
    ]);
  });

  it("refuses a patch to a document its sender does not write, stores nothing of it, and ends the session", async () => {
    const [a, b] = [await side(), await side()];
    await write(a, "task/victim", "completed");
    const { ends } = connect(a, b);
    await eventually(async () => (await b.store.heads("task/victim")) !== undefined, 5000, "b holds the document");
    const held = await b.store.heads("task/victim");
    // A forged continuation, signed by A's peer on the channel but not its writer: sent as if A had sent it.
    const mallory = deviceIdentityFromSeed(randomBytes(32));
    const victim = (await a.store.get<Doc>("task/victim"))!;
    const forged = A.change(A.clone(victim, { actor: "cc".repeat(16) }), (d) => void (d.status = "failed"));
    await ends[0].send({ t: "patch", items: [signedPatch("task/victim", A.getHeads(victim), A.saveSince(forged, A.getHeads(victim)), signHeads(mallory, "task/victim", A.getHeads(forged)))] });
    await eventually(() => b.refused.length > 0, 5000, "refused");
    expect(b.refused[0]).toMatchObject({ id: "task/victim", peer: a.identity.peerId, offence: true });
    expect(await b.store.heads("task/victim")).toEqual(held);
    await eventually(() => ends[1].closed, 5000, "the session is cut");
  });
});

describe("sync sessions leaving out texts the receiver sent the sender", () => {
  /** A text like a command's output, 30 KB, different each time. */
  const output = (): string => Array.from({ length: 5000 }, () => randomBytes(2).readUInt16BE()).join(" ");
  const patchesOf = (messages: SyncMessage[]) => messages.flatMap((m) => (m.t === "patch" ? m.items : []));
  const writeText = (s: Side, id: string, text: string) =>
    s.store.update<Doc>(id, (doc) => A.change(doc!, (d) => void ((d as unknown as { status: A.ImmutableString }).status = new A.ImmutableString(text))));

  /** A holds task/out, B its replica; each side's echo memory, and what each sent. */
  async function pair(): Promise<{ a: Side; b: Side; echoes: [EchoTexts, EchoTexts]; sessions: [PeerSession, PeerSession]; sent: [SyncMessage[], SyncMessage[]] }> {
    const [a, b] = [await side(), await side()];
    await write(a, "task/out", "running");
    const echoes: [EchoTexts, EchoTexts] = [createEchoTexts(), createEchoTexts()];
    const { sessions, sent } = connect(a, b, undefined, echoes);
    await eventually(async () => (await b.store.heads("task/out")) !== undefined, 5000, "b holds the document");
    return { a, b, echoes, sessions, sent };
  }

  it("sends back without the text the receiver sent it, and the receiver rebuilds exactly the writer's signed change", async () => {
    const { a, b, echoes, sessions, sent } = await pair();
    const text = output();
    // B streamed the text to A, which writes it into its own document.
    echoes[1].sent(a.identity.peerId, text);
    echoes[0].received(b.identity.peerId, text);
    const before = (await a.store.heads("task/out"))!;
    await writeText(a, "task/out", text);
    await sessions[0].push([{ id: "task/out", since: before }]);
    await eventually(async () => sameHeadsOf(await b.store.heads("task/out"), await a.store.heads("task/out")), 5000, "b reaches a's heads");
    expect((await b.store.get<Doc>("task/out"))!.status.toString()).toBe(text);
    const [item] = patchesOf(sent[0]).slice(-1);
    expect(item!.refs).toHaveLength(1);
    expect(item!.changes.byteLength).toBeLessThan(1000);
    expect([a.refused, b.refused, a.errors, b.errors]).toEqual([[], [], [], []]);
  });

  it("is asked for the whole change when the receiver no longer holds the text, and then sends it whole", async () => {
    const { a, b, echoes, sessions, sent } = await pair();
    const text = output();
    // A believes B sent it the text; B holds no such memory (restarted, or it went to someone else).
    echoes[0].received(b.identity.peerId, text);
    echoes[1].sent("someone-else", text);
    const before = (await a.store.heads("task/out"))!;
    await writeText(a, "task/out", text);
    await sessions[0].push([{ id: "task/out", since: before }]);
    await eventually(async () => sameHeadsOf(await b.store.heads("task/out"), await a.store.heads("task/out")), 5000, "b reaches a's heads");
    expect(sent[1].some((m) => m.t === "want")).toBe(true);
    const patches = patchesOf(sent[0]).slice(-2);
    expect(patches.map((p) => p.refs === undefined)).toEqual([false, true]);
    expect([a.refused, b.refused, a.errors, b.errors]).toEqual([[], [], [], []]);
  });

  it("takes a rebuilt change only with its writer's signature: a member's patch rebuilt from the text refused as any forged one", async () => {
    const { a, b, echoes } = await pair();
    const mallory = rawPeer(b, "mallory", { echoes: echoes[1] });
    const text = output();
    echoes[1].sent("mallory", text);
    const victim = (await a.store.get<Doc>("task/out"))!;
    const forged = A.change(A.clone(victim, { actor: "cc".repeat(16) }), (d) => void ((d as unknown as { status: A.ImmutableString }).status = new A.ImmutableString(text)));
    const whole = A.saveSince(forged, A.getHeads(victim));
    const elide = createEchoTexts();
    elide.received(b.identity.peerId, text);
    const cut = elide.elide(b.identity.peerId, whole)!;
    await mallory.end.send({ t: "patch", items: [{ ...signedPatch("task/out", A.getHeads(victim), cut.changes, signHeads(deviceIdentityFromSeed(randomBytes(32)), "task/out", A.getHeads(forged))), refs: cut.refs }] });
    await eventually(() => b.refused.length > 0, 5000, "refused");
    expect(b.refused[0]).toMatchObject({ id: "task/out", peer: "mallory", offence: true });
    // The evidence kept is the change as rebuilt.
    expect(Buffer.from(b.refused[0]!.changes).equals(Buffer.from(whole))).toBe(true);
    expect(await b.store.heads("task/out")).toEqual(A.getHeads(victim));
  });
});

const sameHeadsOf = (x: string[] | undefined, y: string[] | undefined): boolean => x !== undefined && y !== undefined && [...x].sort().join() === [...y].sort().join();

describe("reconnecting sync sessions that keep their position in each other's change log", () => {
  const kinds = (messages: SyncMessage[]): string[] => [...new Set(messages.map((m) => m.t))].sort();
  const changedItems = (messages: SyncMessage[]): number => messages.reduce((n, m) => n + (m.t === "changed" ? m.items.length : 0), 0);

  it("compares summaries once, then asks only for what changed since: nothing changed is one question and one empty answer each way", async () => {
    const [a, b] = [await side(), await side()];
    const positions: [LogPositions, LogPositions] = [positionsOf(a), positionsOf(b)];
    for (let i = 0; i < 300; i++) await write(a, `task/${String(i).padStart(4, "0")}`, `done ${i}`);
    await write(b, "task/b-own", "done");
    const first = connect(a, b, positions);
    await eventually(async () => (await b.store.heads("task/0299")) !== undefined && (await a.store.heads("task/b-own")) !== undefined, 10_000, "first reconciliation");
    await eventually(() => positions[1].get(a.identity.peerId) !== undefined && positions[0].get(b.identity.peerId) !== undefined, 5000, "positions kept");
    expect(kinds(first.sent[0])).toContain("summary");
    await Promise.all(first.ends.map((e) => e.close()));

    // Apart: a changes five documents, b one.
    for (const i of [3, 150, 299]) await write(a, `task/${String(i).padStart(4, "0")}`, "changed while apart");
    await write(a, "task/new-1", "new");
    await write(a, "task/new-2", "new");
    await write(b, "task/b-own", "changed while apart");
    const again = connect(a, b, positions);
    await eventually(async () => (await b.store.get<Doc>("task/new-2"))?.status === "new" && (await a.store.get<Doc>("task/b-own"))?.status === "changed while apart", 10_000, "the changes made apart");
    expect((await b.store.get<Doc>("task/0150"))?.status).toBe("changed while apart");
    for (const sent of again.sent) expect(kinds(sent)).not.toContain("summary");
    expect([changedItems(again.sent[0]), changedItems(again.sent[1])]).toEqual([5, 1]);
    const answered = again.sent[0].find((m) => m.t === "changed")!;
    await eventually(() => answered.t === "changed" && positions[1].get(a.identity.peerId)!.seq === answered.upto, 5000, "b's position of a's log moved on");
    await Promise.all(again.ends.map((e) => e.close()));

    const quiet = connect(a, b, positions);
    await eventually(() => quiet.sent.every((s) => s.some((m) => m.t === "changed")), 5000, "both answered");
    await new Promise((r) => setTimeout(r, 100));
    expect(quiet.sent.map(kinds)).toEqual([["changed", "since"], ["changed", "since"]]);
    expect([changedItems(quiet.sent[0]), changedItems(quiet.sent[1])]).toEqual([0, 0]);
    expect([a.refused, b.refused, a.errors, b.errors]).toEqual([[], [], [], []]);
  });

  it("keeps its position in the peer's log current while live: after a thousand documents patched and a quiet moment it asks again, so a reconnect scans nothing of what the peer took; a few do not make it ask", async () => {
    const [a, b] = [await side(), await side()];
    const positions: [LogPositions, LogPositions] = [positionsOf(a), positionsOf(b)];
    const live = connect(a, b, positions);
    await eventually(() => positions[0].get(b.identity.peerId) !== undefined, 5000, "a's first position in b's log");
    const before = positions[0].get(b.identity.peerId)!.seq;
    // A few changes: no question of their own (each would cost every pair two frames).
    for (let i = 0; i < 3; i++) await write(a, `task/few-${i}`, "done");
    await live.sessions[0].push([0, 1, 2].map((i) => ({ id: `task/few-${i}`, since: [] })));
    await eventually(async () => (await b.store.heads("task/few-2")) !== undefined, 10_000, "b took the few");
    await new Promise((r) => setTimeout(r, 2500));
    expect(live.sent[0].filter((m) => m.t === "since")).toHaveLength(1);
    for (let i = 0; i < 1200; i++) await write(a, `task/${String(i).padStart(4, "0")}`, `done ${i}`);
    // Pushed live, as a's live push sends its own changes.
    await live.sessions[0].push(Array.from({ length: 1200 }, (_, i) => ({ id: `task/${String(i).padStart(4, "0")}`, since: [] })));
    await eventually(async () => (await b.store.heads("task/1199")) !== undefined, 20_000, "b took a's documents");
    // b's log grew by what it took from a; a's position catches up once the session has been quiet a moment.
    await eventually(() => positions[0].get(b.identity.peerId)!.seq === b.store.logPosition().seq, 10_000, "a's position at the end of b's log");
    expect(positions[0].get(b.identity.peerId)!.seq).toBeGreaterThan(before);
    const { entries } = (await b.store.changedSince(b.store.logPosition().epoch, positions[0].get(b.identity.peerId)!.seq, ["task/"]))!;
    expect(entries).toEqual([]);
    await Promise.all(live.ends.map((e) => e.close()));
  });

  it("answers a peer whose position fell behind while it sent a thousand documents without reading their entries: a session cut before the quiet re-ask costs the next reconnect only what others changed", async () => {
    const [a, b] = [await side(), await side()];
    const positions: [LogPositions, LogPositions] = [positionsOf(a), positionsOf(b)];
    const live = connect(a, b, positions);
    await eventually(() => positions[0].get(b.identity.peerId) !== undefined, 5000, "a's first position in b's log");
    const stale = positions[0].get(b.identity.peerId)!;
    for (let i = 0; i < 1200; i++) await write(a, `task/${String(i).padStart(4, "0")}`, `done ${i}`);
    await live.sessions[0].push(Array.from({ length: 1200 }, (_, i) => ({ id: `task/${String(i).padStart(4, "0")}`, since: [] })));
    await eventually(async () => (await b.store.heads("task/1199")) !== undefined, 20_000, "b took a's documents");
    // Cut at once: a never asked again, so its position is from before b's log grew by the 1,200.
    await Promise.all(live.ends.map((e) => e.close()));
    expect(positions[0].get(b.identity.peerId)).toEqual(stale);
    await write(b, "task/b-own", "written by b meanwhile");

    const reads = countReads(b.db);
    const again = connect(a, b, positions);
    await eventually(async () => (await a.store.heads("task/b-own")) !== undefined && positions[0].get(b.identity.peerId)!.seq === b.store.logPosition().seq, 10_000, "a took b's own and moved on");
    const read = reads.entries();
    reads.stop();
    const answer = again.sent[1].find((m) => m.t === "changed")!;
    expect(answer.t === "changed" && answer.items.map((item) => item.id)).toEqual(["task/b-own"]);
    // Of b's log past a's position, 1,201 entries, only b's own was read.
    expect(read).toBeLessThan(20);
    expect([a.refused, b.refused, a.errors, b.errors]).toEqual([[], [], [], []]);
  });

  it("takes a changed answer only to its own question: one sent unasked changes no position and asks for nothing", async () => {
    const [a, b] = [await side(), await side()];
    const bPositions = positionsOf(b);
    await write(a, "task/held-by-a", "done");
    const { end, received } = rawPeer(b, a.identity.peerId, { positions: bPositions });
    await eventually(() => received.some((m) => m.t === "since"), 5000, "b asks");
    await end.send({ t: "changed", epoch: "ab12", upto: 3, reset: false, items: [], last: true });
    await eventually(() => bPositions.get(a.identity.peerId) !== undefined, 5000, "b keeps the position answered");
    const kept = bPositions.get(a.identity.peerId);
    // Unasked: a reset that would make b compare summaries, a list that would make it want, a position far ahead.
    await end.send({ t: "changed", epoch: "ab12", upto: 99, reset: true, items: [], last: true });
    await end.send({ t: "changed", epoch: "cd34", upto: 1_000_000, reset: false, items: [{ id: "task/held-by-a", heads: (await a.store.heads("task/held-by-a"))! }], last: true });
    await new Promise((r) => setTimeout(r, 200));
    expect(received.filter((m) => m.t !== "since").map((m) => m.t)).toEqual([]);
    expect(bPositions.get(a.identity.peerId)).toEqual(kept);
  });

  it("keeps a position only once every document it asked for is held: a session cut before they came asks again", async () => {
    const [a, b] = [await side(), await side()];
    const bPositions = positionsOf(b);
    await write(a, "task/first", "done");
    const first = connect(a, b, [positionsOf(a), bPositions]);
    await eventually(() => bPositions.get(a.identity.peerId) !== undefined, 5000, "b's first position");
    const kept = bPositions.get(a.identity.peerId)!;
    await Promise.all(first.ends.map((e) => e.close()));
    await write(a, "task/second", "done");

    // a answers b's question but never sends the document b asks for.
    const { end, received: asked, ends } = rawPeer(b, a.identity.peerId, { positions: bPositions });
    const answer = (await a.store.changedSince(kept.epoch, kept.seq, ["task/"]))!;
    await end.send({ t: "changed", epoch: answer.epoch, upto: answer.upto, reset: false, items: answer.entries, last: true });
    await eventually(() => asked.some((m) => m.t === "want"), 5000, "b asks for the document");
    await Promise.all(ends.map((e) => e.close()));
    expect(bPositions.get(a.identity.peerId)).toEqual(kept);

    connect(a, b, [positionsOf(a), bPositions]);
    await eventually(async () => (await b.store.heads("task/second")) !== undefined, 5000, "b asked again and got it");
    await eventually(() => bPositions.get(a.identity.peerId)!.seq === answer.upto, 5000, "b's position moved on");
  });
});
