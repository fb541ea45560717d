import { setImmediate as nextTurn } from "node:timers/promises";
import * as A from "@automerge/automerge";
import { MalformedFrameError, PeerLimitError } from "../framing/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import type { ChangedMessage, EntriesMessage, HaveMessage, PatchMessage, PeersMessage, SinceMessage, SummaryMessage, SyncMessage, WantMessage } from "./messages.js";
import type { LogPositions } from "./log-positions.js";
import type { HeadsSignature } from "./heads-signature.js";
import { sameHeads } from "../../src/storage/document-store.js";
import { EMPTY_DIGEST, type LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { docRootListReader, docRootReader, type RootListReader, type RootReader } from "../../src/storage/root-reader.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { ECHO, type Refusal, type ReplicaAuthority } from "./replica-authority.js";
import type { WantTarget, WantTracker } from "./want-tracker.js";
import type { EchoTexts } from "./echo-texts.js";
import { MAX_SYNC_FRAME_BYTES, MAX_SYNC_NEIGHBOURS } from "./messages.js";

/** A received change that was not taken, with what came, for the audit log and the quarantine. */
export interface RefusedChange extends Refusal {
  id: string;
  peer: string;
  writer: string;
  /** The bytes as they came: evidence, never read as state. */
  changes: Uint8Array;
}

/** Limits and collaborators of one peer's sync session. */
export interface PeerSessionOptions {
  store: Pick<LevelDocumentStore, "get" | "update" | "receiveNew" | "heads" | "summary" | "bucketEntries" | "changedSince" | "logPosition">;
  authority: ReplicaAuthority;
  prefixes: readonly string[];
  /** A patch frame is sent once it holds this many bytes of changes. */
  targetFrameBytes: number;
  /** Entries frames carry whole buckets up to about this many entries. */
  maxEntriesPerFrame: number;
  /**
   * The side that opened the stream drives reconciliation: it sends the
   * summaries and the patches or wants for the differing ids; the other side
   * answers.
   */
  initiator: boolean;
  /** Every refused change; the session is cut after one that is an offence. */
  onRefused: (refused: RefusedChange) => void;
  onError: (error: Error) => void;
  /**
   * Shared by a node's sessions, so a change several peers announce is asked
   * of one. Without it every announcement of a change this side lacks is
   * answered with a want.
   */
  wants?: WantTracker;
  /** The peer's set of direct sync peers changed; `removed` are those it no longer has. */
  onPeers?: (removed: string[]) => void;
  /** The session ended. */
  onEnded?: () => void;
  /**
   * Where this side stands in each peer's change log. With it, each side asks
   * the other at the start for what changed since (summaries are compared only
   * without a position); without it, the initiator compares summaries.
   */
  positions?: LogPositions;
  /** Texts this side and the peer sent each other (a routed task's output): left out of patches going back, put back on receipt. */
  echoes?: EchoTexts;
}

/**
 * A reconciliation to position `upto` of the peer's log under way: settled,
 * and the position kept, once the summaries asked are answered and every
 * document asked for is held.
 */
interface Round {
  epoch: string;
  upto: number;
  summaries: number;
  pending: Set<string>;
}

/** Documents of one patch frame applied per turn of the event loop. */
const PATCH_ITEMS_PER_TURN = 8;

/**
 * Once this many documents went either way in patches since this side last
 * asked `since`, and the session was then quiet for {@link REASK_AFTER_QUIET_MS},
 * the side asks again: the peer's log grew by what it took, and a position
 * kept current makes the next reconnect's answer (and the scan of the peer's log
 * behind it) as small as what changed while apart. Fewer cost a reconnect
 * little, and asking after each would cost every pair two frames per change.
 */
const REASK_AFTER_DOCUMENTS = 1000;
const REASK_AFTER_QUIET_MS = 2000;

/** Entries one multi-frame answer may carry; far above any real store prefix, it only stops a peer that never sends `last`. */
const MAX_PENDING_ENTRIES = 1_000_000;

/** Documents whose heads at the peer are remembered; past it the memory starts again (it only saves announcements). */
const MAX_KNOWN = 20_000;

/** Changes of one document from `since` to `heads`, in Automerge save format, with its writer's signature. */
export type PatchItem = PatchMessage["items"][number];

/** A patch item carrying `signature`. */
export function signedPatch(id: string, since: string[], changes: Uint8Array, signature: HeadsSignature): PatchItem {
  return { id, since, heads: signature.heads, changes, w: signature.writer, sig: signature.sig, at: signature.index, n: signature.size, proof: signature.proof };
}

/** The signature a patch item carries. */
function signatureOf(item: PatchItem): HeadsSignature {
  return { writer: item.w, heads: item.heads, sig: item.sig, index: item.at, size: item.n, proof: item.proof };
}

/**
 * Sync with one peer over one channel. The initiator sends a summary per
 * prefix; the other side answers a differing summary with the entries of the
 * differing buckets (split over frames, the last one flagged). For each id whose
 * heads differ, the initiator sends a patch when it holds every head the peer
 * has, else a want; the peer answers a want with a patch. Every patch carries
 * the document's writer's signature over the heads it ends at, and is refused
 * unless it ends exactly there: a document has one writer, so its history is one
 * line and one side always holds all the other has. Patches and wants carry many
 * documents per frame. Every step runs through one serial queue.
 */
export class PeerSession {
  readonly channel: MessageChannel<SyncMessage>;
  readonly #options: PeerSessionOptions;
  #serial: Promise<void> = Promise.resolve();
  /** Entries of a multi-frame answer, per prefix, until its last frame. */
  readonly #pendingEntries = new Map<string, Array<{ id: string; heads: string[] }>>();
  /** Set when this side cut the session for an offence. */
  #cut = false;
  /** Heads the peer is known to hold, from what it sent or announced, per document. */
  readonly #known = new Map<string, readonly string[]>();
  #neighbours: ReadonlySet<string> = new Set();
  /** The peers last told, once a list was sent. */
  #sentPeers: Set<string> | undefined;
  readonly #wantTarget: WantTarget;
  #changed: Array<{ id: string; heads: string[] }> = [];
  /** A `since` was sent and its `changed` answer has not ended: only then is a `changed` taken. */
  #asking = false;
  #round: Round | undefined;
  #reask: NodeJS.Timeout | undefined;
  /** Documents patched either way since this side last asked `since`. */
  #patchedSinceAsked = 0;

  constructor(channel: MessageChannel<SyncMessage>, options: PeerSessionOptions) {
    this.channel = channel;
    this.#options = options;
    const session = this;
    this.#wantTarget = {
      peer: channel.peer,
      get closed() {
        return session.channel.closed;
      },
      want: (id) => void this.#enqueue(async () => this.#sendWants(await this.#wantsFor([id]))),
    };
  }

  /** Send summaries when driving, then process the peer's messages until the channel ends. */
  async run(): Promise<void> {
    try {
      if (this.#options.positions !== undefined) await this.#enqueue(() => this.#sendSince());
      else if (this.#options.initiator) await this.#enqueue(() => this.#sendSummaries());
      for await (const message of this.channel) await this.#enqueue(() => this.#handle(message));
    } finally {
      clearTimeout(this.#reask);
      this.#options.onEnded?.();
    }
  }

  /** The peers the peer last said it syncs with directly. */
  get neighbours(): ReadonlySet<string> {
    return this.#neighbours;
  }

  /** True when the peer is known to hold `id` at exactly `heads`. */
  peerHolds(id: string, heads: readonly string[]): boolean {
    const known = this.#known.get(id);
    return known !== undefined && sameHeads(known, heads);
  }

  /** Announce documents this side holds; the peer asks for those it lacks. Those it is known to hold are left out. */
  announce(items: ReadonlyArray<{ id: string; heads: string[] }>): Promise<void> {
    const news = items.filter((item) => !this.peerHolds(item.id, item.heads));
    if (news.length === 0) return Promise.resolve();
    return this.#enqueue(async () => {
      for (let i = 0; i < news.length; i += 5000) await this.channel.send({ t: "have", items: news.slice(i, i + 5000) });
    });
  }

  /** Tell the peer which peers this side syncs with directly, when that differs from what it was last told: whole once, then what changed. */
  sendPeers(peers: readonly string[]): Promise<void> {
    const now = new Set(peers.filter((p) => p !== this.channel.peer));
    const told = this.#sentPeers;
    this.#sentPeers = now;
    if (told === undefined) return this.#enqueue(() => this.channel.send({ t: "peers", peers: [...now].sort() }));
    const added = [...now].filter((p) => !told.has(p)).sort();
    const gone = [...told].filter((p) => !now.has(p)).sort();
    if (added.length === 0 && gone.length === 0) return Promise.resolve();
    return this.#enqueue(() => this.channel.send({ t: "peers", peers: added, delta: true, ...(gone.length > 0 && { gone }) }));
  }

  /** Push the changes of each document after `since` (heads the peer is taken to hold), built from the stored document. */
  push(items: ReadonlyArray<{ id: string; since: string[] }>): Promise<void> {
    return this.#enqueue(async () => {
      const wanted: Array<{ id: string; doc: A.Doc<unknown> | undefined; since: string[] }> = [];
      for (const { id, since } of items) wanted.push({ id, doc: await this.#options.store.get<unknown>(id), since });
      await this.#sendPatches(this.#patchesOf(wanted));
    });
  }

  /**
   * Push changes as patches: one message, no exchange. A peer that holds each
   * patch's `since` (the usual case for a live peer) applies it at once; any
   * other answers with a want.
   */
  pushPatches(patches: PatchItem[]): Promise<void> {
    return this.#enqueue(() => this.#sendPatches(patches));
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.#serial.then(step);
    this.#serial = next.catch((err: unknown) => {
      if (!this.channel.closed) this.#options.onError(err instanceof Error ? err : new Error(String(err)));
    });
    return this.#serial;
  }

  /**
   * The changes of each document after `since` (the whole document when the peer
   * has nothing), signed; documents this side does not hold past `since`, or holds
   * no signature for, are left out.
   */
  #patchesOf(wanted: ReadonlyArray<{ id: string; doc: A.Doc<unknown> | undefined; since: string[] }>): PatchItem[] {
    const held = wanted.filter((w): w is { id: string; doc: A.Doc<unknown>; since: string[] } => w.doc !== undefined && A.hasHeads(w.doc, w.since));
    const heads = held.map((w) => A.getHeads(w.doc));
    const signatures = this.#options.authority.signaturesFor(held.map((w, i) => ({ id: w.id, heads: heads[i]!, root: () => docRootReader(w.doc) })));
    const out: PatchItem[] = [];
    held.forEach(({ id, doc, since }, i) => {
      const signature = signatures[i];
      if (signature === undefined) return;
      const changes = changesShown(doc, since);
      if (changes !== undefined) out.push(signedPatch(id, since, changes, signature));
    });
    return out;
  }

  async #sendSummaries(): Promise<void> {
    for (const prefix of this.#options.prefixes) {
      const summary = await this.#options.store.summary(prefix);
      await this.channel.send({ t: "summary", prefix, count: summary.count, buckets: summary.buckets.map((d) => (d === EMPTY_DIGEST ? "" : d)) });
    }
  }

  async #handle(message: SyncMessage): Promise<void> {
    switch (message.t) {
      case "summary":
        return this.#onSummary(message);
      case "entries":
        return this.#onEntries(message);
      case "patch":
        return this.#onPatch(message);
      case "want":
        return this.#onWant(message);
      case "have":
        return this.#onHave(message);
      case "peers":
        return this.#onPeers(message);
      case "since":
        return this.#onSince(message);
      case "changed":
        return this.#onChanged(message);
    }
  }

  async #sendSince(): Promise<void> {
    const at = this.#options.positions?.get(this.channel.peer);
    this.#asking = true;
    this.#patchedSinceAsked = 0;
    await this.channel.send({ t: "since", ...(at !== undefined && { epoch: at.epoch }), seq: at?.seq ?? 0 });
  }

  async #onSince(message: SinceMessage): Promise<void> {
    const { store, prefixes } = this.#options;
    const answer = message.epoch === undefined ? undefined : await store.changedSince(message.epoch, message.seq, prefixes, this.channel.peer);
    if (answer === undefined) {
      const at = store.logPosition();
      await this.channel.send({ t: "changed", epoch: at.epoch, upto: at.seq, reset: true, items: [], last: true });
      return;
    }
    const { epoch, upto, entries } = answer;
    for (let i = 0; i === 0 || i < entries.length; i += 5000) {
      await this.channel.send({ t: "changed", epoch, upto, reset: false, items: entries.slice(i, i + 5000), last: i + 5000 >= entries.length });
    }
  }

  async #onChanged(message: ChangedMessage): Promise<void> {
    // An answer nobody asked for would make this side compare summaries, or move its position, at the peer's will.
    if (!this.#asking) return;
    for (const item of message.items) this.#changed.push(item);
    if (this.#changed.length > MAX_PENDING_ENTRIES) {
      this.channel.abort(new PeerLimitError(`${this.channel.peer} sent more than ${MAX_PENDING_ENTRIES} changed documents without a last frame`, this.channel.peer));
      return;
    }
    if (!message.last) return;
    this.#asking = false;
    const items = this.#changed;
    this.#changed = [];
    if (message.reset) {
      this.#round = { epoch: message.epoch, upto: message.upto, summaries: this.#options.prefixes.length, pending: new Set() };
      await this.#sendSummaries();
      return;
    }
    const wants = await this.#wantsFor((await this.#lacking(items)).map((item) => item.id));
    this.#round = { epoch: message.epoch, upto: message.upto, summaries: 0, pending: new Set(wants.map((w) => w.id)) };
    await this.#sendWants(wants);
    this.#settle();
  }

  /** Keep the peer's log position once the round under way has brought everything it asked for. */
  #settle(): void {
    const round = this.#round;
    if (round === undefined || round.summaries > 0 || round.pending.size > 0) return;
    this.#round = undefined;
    this.#options.positions?.set(this.channel.peer, { epoch: round.epoch, seq: round.upto });
  }

  #learn(id: string, heads: readonly string[]): void {
    if (this.#known.size >= MAX_KNOWN) this.#known.clear();
    this.#known.set(id, heads);
  }

  /** Of documents the peer says it holds at these heads, the replicated ones this side lacks; what the peer holds is noted. */
  async #lacking(items: ReadonlyArray<{ id: string; heads: string[] }>): Promise<Array<{ id: string; heads: string[] }>> {
    const out: Array<{ id: string; heads: string[] }> = [];
    for (const { id, heads } of items) {
      if (!this.#replicated(id)) continue;
      this.#learn(id, heads);
      if (!(await holdsHeads(this.#options.store, id, heads))) out.push({ id, heads });
    }
    return out;
  }

  /** Wants of `ids`, each from the heads held here (none for a document this side lacks). */
  async #wantsFor(ids: readonly string[]): Promise<Array<{ id: string; heads: string[] }>> {
    const out: Array<{ id: string; heads: string[] }> = [];
    for (const id of ids) out.push({ id, heads: (await this.#options.store.heads(id)) ?? [] });
    return out;
  }

  async #onHave(message: HaveMessage): Promise<void> {
    const lacking = await this.#lacking(message.items);
    const { wants } = this.#options;
    if (wants === undefined) return this.#sendWants(await this.#wantsFor(lacking.map((item) => item.id)));
    for (const { id, heads } of lacking) wants.announced(id, heads, this.#wantTarget);
  }

  #onPeers(message: PeersMessage): void {
    const next = message.delta === true ? new Set(this.#neighbours) : new Set(message.peers);
    if (message.delta === true) {
      for (const p of message.gone ?? []) next.delete(p);
      for (const p of message.peers) if (next.size < MAX_SYNC_NEIGHBOURS) next.add(p);
    }
    const removed = [...this.#neighbours].filter((p) => !next.has(p));
    this.#neighbours = next;
    if (removed.length > 0) this.#options.onPeers?.(removed);
  }

  #replicated(id: string): boolean {
    return this.#options.prefixes.some((p) => id.startsWith(p)) && this.#options.authority.replicates(id);
  }

  async #onSummary(remote: SummaryMessage): Promise<void> {
    if (!this.#options.prefixes.includes(remote.prefix)) return;
    const local = await this.#options.store.summary(remote.prefix);
    const differing: number[] = [];
    local.buckets.forEach((digest, i) => {
      if ((remote.buckets[i] || EMPTY_DIGEST) !== digest) differing.push(i);
    });
    // Answered even when nothing differs: the asker may be waiting to settle a round.
    const entries = differing.length === 0 ? [] : await this.#options.store.bucketEntries(remote.prefix, differing);
    const max = this.#options.maxEntriesPerFrame;
    for (let i = 0; i === 0 || i < entries.length; i += max) {
      const last = i + max >= entries.length;
      await this.channel.send({ t: "entries", prefix: remote.prefix, buckets: differing, entries: entries.slice(i, i + max), last });
    }
  }

  async #onEntries(remote: EntriesMessage): Promise<void> {
    if (!this.#options.prefixes.includes(remote.prefix)) return;
    const pending = this.#pendingEntries.get(remote.prefix) ?? [];
    for (const entry of remote.entries) if (entry.id.startsWith(remote.prefix)) pending.push(entry);
    if (pending.length > MAX_PENDING_ENTRIES) {
      this.channel.abort(new PeerLimitError(`${this.channel.peer} sent more than ${MAX_PENDING_ENTRIES} entries without a last frame`, this.channel.peer));
      return;
    }
    if (!remote.last) {
      this.#pendingEntries.set(remote.prefix, pending);
      return;
    }
    this.#pendingEntries.delete(remote.prefix);
    const remoteHeads = new Map(pending.map((e) => [e.id, e.heads]));
    const local = await this.#options.store.bucketEntries(remote.prefix, remote.buckets);
    const differing = new Set<string>();
    for (const entry of local) {
      const theirs = remoteHeads.get(entry.id);
      if (theirs === undefined || !sameHeads(entry.heads, theirs)) differing.add(entry.id);
    }
    const localIds = new Set(local.map((e) => e.id));
    for (const id of remoteHeads.keys()) if (!localIds.has(id)) differing.add(id);
    // Where this side holds everything the peer has, one patch settles the document; otherwise ask for the peer's.
    const offered: Array<{ id: string; doc: A.Doc<unknown>; since: string[] }> = [];
    const wants: Array<{ id: string; heads: string[] }> = [];
    for (const id of differing) {
      if (!this.#replicated(id)) continue;
      const doc = await this.#options.store.get<unknown>(id);
      const theirs = remoteHeads.get(id) ?? [];
      if (doc !== undefined && A.hasHeads(doc, theirs)) offered.push({ id, doc, since: theirs });
      else if (remoteHeads.has(id)) wants.push({ id, heads: doc === undefined ? [] : A.getHeads(doc) });
    }
    const round = this.#round;
    // In a round each side asks for what it lacks; offering what the peer lacks would send it twice, its own round asking too.
    if (round === undefined) await this.#sendPatches(this.#patchesOf(offered));
    await this.#sendWants(wants);
    if (round !== undefined && round.summaries > 0) {
      for (const w of wants) round.pending.add(w.id);
      round.summaries--;
      this.#settle();
    }
  }

  async #onWant(message: WantMessage): Promise<void> {
    const wanted: Array<{ id: string; doc: A.Doc<unknown> | undefined; since: string[] }> = [];
    // A document this side lacks, or holds behind the peer, is the peer's to send.
    for (const { id, heads } of message.items) {
      if (!this.#replicated(id)) continue;
      this.#learn(id, heads);
      wanted.push({ id, doc: await this.#options.store.get<unknown>(id), since: heads });
    }
    await this.#sendPatches(this.#patchesOf(wanted));
  }

  async #onPatch(message: PatchMessage): Promise<void> {
    const behind: Array<{ id: string; heads: string[] }> = [];
    // Replication is background work: a frame of many documents is applied a slice per turn of the
    // event loop, so requests and answers arriving meanwhile are not held up behind all of it.
    for (let i = 0; i < message.items.length; i += PATCH_ITEMS_PER_TURN) {
      if (i > 0) await nextTurn();
      // After an offence the rest of the frame is not looked at; a peer that merely ended its side is still heard.
      if (this.#cut) return;
      await this.#applyPatches(message.items.slice(i, i + PATCH_ITEMS_PER_TURN), behind);
    }
    for (const item of message.items) {
      this.#learn(item.id, item.heads);
      this.#options.wants?.received(item.id);
    }
    this.#reaskWhenQuiet(message.items.length);
    await this.#sendWants(behind);
    const round = this.#round;
    if (round !== undefined && round.pending.size > 0) {
      for (const item of message.items) if (round.pending.has(item.id) && (await holdsHeads(this.#options.store, item.id, item.heads))) round.pending.delete(item.id);
      this.#settle();
    }
  }

  async #applyPatches(items: PatchMessage["items"], behind: Array<{ id: string; heads: string[] }>): Promise<void> {
    const { store, authority } = this.#options;
    const refusals = await Promise.all(
      items.map(async (item): Promise<RefusedChange | undefined> => {
        const { id, since, heads, w } = item;
        const signature = signatureOf(item);
        let changes = item.changes;
        const refuse = (refusal: Refusal): RefusedChange => ({ ...refusal, id, peer: this.channel.peer, writer: w, changes });
        if (!this.#replicated(id)) return refuse({ reason: `${id} is not a replicated document`, offence: true });
        const storedHeads = await store.heads(id);
        if (item.refs !== undefined) {
          const restored = this.#options.echoes?.restore(this.channel.peer, item.changes, item.refs, MAX_SYNC_FRAME_BYTES);
          // A text referred to that this side no longer holds (forgotten, or never sent): the whole changes are asked for.
          if (restored === undefined) {
            behind.push({ id, heads: storedHeads ?? [] });
            return undefined;
          }
          changes = restored;
        }
        if (storedHeads !== undefined && sameHeads(storedHeads, heads)) return undefined;
        const extendsHeld = storedHeads !== undefined && since.length > 0 && since.every((h) => storedHeads.includes(h));
        const screened = authority.screen(id, signature, storedHeads !== undefined, extendsHeld);
        if (screened === ECHO) return undefined;
        if (screened !== undefined) return refuse(screened);
        const from = this.channel.peer;
        try {
          const judge = (resultHeads: readonly string[], root: RootReader, lists: RootListReader, actors: () => string[]): void => {
            const refusal = authority.judge(id, signature, resultHeads, root, lists, actors);
            if (refusal !== undefined) throw new RefusedChangeError(refusal);
          };
          const ops = authority.recordOps(id, signature);
          if (since.length === 0 && storedHeads === undefined && (await store.receiveNew(id, changes, "remote", { ops, check: judge, from }))) return undefined;
          let missing = false;
          await store.update<unknown>(
            id,
            (current) => {
              if (current !== undefined && A.hasHeads(current, heads)) return current;
              if (since.length > 0 && (current === undefined || !A.hasHeads(current, since))) {
                missing = true;
                return current;
              }
              // A document new here loads whole: far cheaper than applying it to an empty one.
              const next = current === undefined ? A.load<unknown>(changes) : A.loadIncremental(current, changes);
              // The changes this patch adds: those before were checked when they came, or are this node's own.
              const added = (): string[] => A.getBackend(next).getChanges(storedHeads ?? []).map((c) => A.decodeChange(c).actor);
              judge(A.getHeads(next), docRootReader(next), docRootListReader(next), added);
              return next;
            },
            "remote",
            { ops: () => ops, from },
          );
          if (missing) behind.push({ id, heads: storedHeads ?? [] });
          return undefined;
        } catch (err) {
          if (err instanceof RefusedChangeError) return refuse(err.refusal);
          // Bytes Automerge cannot read are the sender's doing as much as a forged signature.
          return refuse({ reason: `changes of ${id} cannot be applied: ${(err as Error).message}`, offence: true });
        }
      }),
    );
    for (const refused of refusals) {
      if (refused === undefined) continue;
      this.#options.onRefused(refused);
      if (refused.offence) {
        this.#cut = true;
        this.channel.abort(new MalformedFrameError(`sync session cut: ${refused.reason}`, { peer: this.channel.peer }));
      }
    }
  }

  async #sendPatches(sending: PatchItem[]): Promise<void> {
    const patches = this.#elided(sending);
    const size = (item: PatchItem): number => item.changes.byteLength + item.id.length + item.w.length + 80 + 34 * item.proof.length + 70 * (item.heads.length + item.since.length);
    for (const items of runsBySize(patches, size, this.#options.targetFrameBytes)) await this.channel.send({ t: "patch", items });
    this.#reaskWhenQuiet(patches.length);
  }

  /** `patches` without the texts the peer sent this side (each left out once: a want is answered in full). */
  #elided(patches: PatchItem[]): PatchItem[] {
    const echoes = this.#options.echoes;
    if (echoes === undefined) return patches;
    return patches.map((item) => {
      const elided = echoes.elide(this.channel.peer, item.changes);
      return elided === undefined ? item : { ...item, changes: elided.changes, refs: elided.refs };
    });
  }

  /** Count `documents` patched; past {@link REASK_AFTER_DOCUMENTS}, (re)start the wait after which the position is brought up to date. */
  #reaskWhenQuiet(documents: number): void {
    this.#patchedSinceAsked += documents;
    if (this.#options.positions === undefined || this.channel.closed || this.#patchedSinceAsked < REASK_AFTER_DOCUMENTS) return;
    clearTimeout(this.#reask);
    this.#reask = setTimeout(() => {
      this.#reask = undefined;
      // A question or a round still under way will keep a position of its own.
      if (this.#asking || this.#round !== undefined || this.channel.closed) return;
      this.#enqueue(() => this.#sendSince()).catch(() => undefined);
    }, REASK_AFTER_QUIET_MS);
    this.#reask.unref();
  }

  async #sendWants(wants: Array<{ id: string; heads: string[] }>): Promise<void> {
    for (let i = 0; i < wants.length; i += 5000) await this.channel.send({ t: "want", items: wants.slice(i, i + 5000) });
  }
}

/**
 * The changes of `doc` after `since`, ending exactly at the heads `doc` shows
 * (the heads a patch is signed over); undefined when `since` is not within them.
 * Automerge saves from the document's backend, which a document object read
 * before a newer change was applied in place shares: that object keeps showing
 * the older heads, while saving it would also carry the newer change, not yet
 * durable, which the receiver then refuses as not ending at the heads signed.
 * Such an object is saved from a copy taken at the heads it shows.
 */
function changesShown(doc: A.Doc<unknown>, since: string[]): Uint8Array | undefined {
  if (sameHeads(A.getHeads(doc), A.getBackend(doc).getHeads())) return since.length === 0 ? A.save(doc) : A.saveSince(doc, since);
  const copy = A.clone(doc);
  try {
    if (!A.hasHeads(copy, since)) return undefined;
    return since.length === 0 ? A.save(copy) : A.saveSince(copy, since);
  } finally {
    A.free(copy);
  }
}

/** True when the store holds `id` at or past `heads`. */
export async function holdsHeads(store: Pick<LevelDocumentStore, "get" | "heads">, id: string, heads: readonly string[]): Promise<boolean> {
  const stored = await store.heads(id);
  if (stored === undefined) return false;
  if (heads.every((h) => stored.includes(h))) return true;
  const doc = await store.get<unknown>(id);
  return doc !== undefined && A.hasHeads(doc, [...heads]);
}

/** Thrown inside a store update to refuse the change it would make; nothing is written. */
class RefusedChangeError extends Error {
  constructor(readonly refusal: Refusal) {
    super(refusal.reason);
  }
}
