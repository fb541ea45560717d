import { setImmediate as nextTurn } from "node:timers/promises";
import * as A from "@automerge/automerge";
import type { FramedChannel } from "../../protocols/framing/channel.js";
import { PeerLimitError } from "../../protocols/framing/errors.js";
import type { DocsMessage, EntriesMessage, PatchMessage, SummaryMessage, SyncMessage, WantMessage } from "../../protocols/sync/messages.js";
import { sameHeads, type DocumentStore } from "../../src/storage/document-store.js";
import { runsBySize } from "../../src/util/runs-by-size.js";

/** Limits and collaborators of one peer's sync session. */
export interface PeerSessionOptions {
  store: DocumentStore;
  prefixes: readonly string[];
  /** Automerge sync states kept for this peer; least recently used dropped first. */
  maxSyncStates: number;
  /** A docs frame is sent once it holds this many bytes of sync messages. */
  targetFrameBytes: number;
  /** Entries frames carry whole buckets up to about this many entries. */
  maxEntriesPerFrame: number;
  /**
   * The side that opened the stream drives reconciliation: it sends the
   * summaries and starts Automerge sync for the differing ids; the other side
   * answers. One driver halves the sync messages of a reconnect.
   */
  initiator: boolean;
  /**
   * Document id -> peer whose changes are being applied to it right now, shared
   * by all sessions, so the engine does not push those changes straight back.
   */
  applying: Map<string, string>;
  onError: (error: Error) => void;
}

/** Documents of one patch frame applied per turn of the event loop. */
const PATCH_ITEMS_PER_TURN = 8;

/** Entries one multi-frame answer may carry; far above any real store prefix, it only stops a peer that never sends `last`. */
const MAX_PENDING_ENTRIES = 1_000_000;

/** An empty document to generate sync messages for ids this node does not hold; only read, never passed to a receive. */
const EMPTY = A.init<unknown>();

/** Changes of one document from `since` to `heads`, in Automerge save format. */
export type PatchItem = PatchMessage["items"][number];

/** The changes of `doc` after `since`; a whole compressed document when the peer has nothing. */
function makePatch(id: string, doc: A.Doc<unknown>, since: string[]): PatchItem {
  return { id, since, heads: A.getHeads(doc), changes: since.length === 0 ? A.save(doc) : A.saveSince(doc, since) };
}

/**
 * Sync with one peer over one channel. The initiator sends a summary per
 * prefix; the other side answers a differing summary with the entries of the
 * differing buckets (split over frames, the last one flagged). For each id whose
 * heads differ, the initiator sends a patch when it holds every head the peer
 * has, else a want; the peer answers a want with a patch, or with Automerge sync
 * when both sides changed the document. Patches, wants and sync messages carry
 * many documents per frame. Live pushes use Automerge sync both ways. Every step
 * runs through one serial queue so a document's sync state is never used by two
 * steps at once.
 */
export class PeerSession {
  readonly channel: FramedChannel<SyncMessage>;
  readonly #options: PeerSessionOptions;
  /** Insertion order is recency order: re-set on use, evict from the front. */
  readonly #states = new Map<string, A.SyncState>();
  #serial: Promise<void> = Promise.resolve();
  /** Entries of a multi-frame answer, per prefix, until its last frame. */
  readonly #pendingEntries = new Map<string, Array<{ id: string; heads: string[] }>>();

  constructor(channel: FramedChannel<SyncMessage>, options: PeerSessionOptions) {
    this.channel = channel;
    this.#options = options;
  }

  /** Sync states held now; bounded by `maxSyncStates`. */
  get syncStates(): number {
    return this.#states.size;
  }

  /** Send summaries when driving, then process the peer's messages until the channel ends. */
  async run(): Promise<void> {
    if (this.#options.initiator) await this.#enqueue(() => this.#sendSummaries());
    for await (const message of this.channel) await this.#enqueue(() => this.#handle(message));
  }

  /** Push the current state of `ids` to this peer by Automerge sync (when what the peer holds is unknown). */
  push(ids: readonly string[]): Promise<void> {
    return this.#enqueue(() => this.#syncIds(ids));
  }

  /**
   * Push changes as patches: one message, no exchange. A peer that holds each
   * patch's `since` (the usual case for a live peer) applies it at once; any
   * other falls back to Automerge sync for that document.
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

  async #sendSummaries(): Promise<void> {
    for (const prefix of this.#options.prefixes) {
      const summary = await this.#options.store.summary(prefix);
      await this.channel.send({ t: "summary", prefix, count: summary.count, buckets: summary.buckets });
    }
  }

  async #handle(message: SyncMessage): Promise<void> {
    switch (message.t) {
      case "summary":
        return this.#onSummary(message);
      case "entries":
        return this.#onEntries(message);
      case "docs":
        return this.#onDocs(message);
      case "patch":
        return this.#onPatch(message);
      case "want":
        return this.#onWant(message);
    }
  }

  #replicated(id: string): boolean {
    return this.#options.prefixes.some((p) => id.startsWith(p));
  }

  async #onSummary(remote: SummaryMessage): Promise<void> {
    if (!this.#options.prefixes.includes(remote.prefix)) return;
    const local = await this.#options.store.summary(remote.prefix);
    const differing: number[] = [];
    local.buckets.forEach((digest, i) => {
      if (remote.buckets[i] !== digest) differing.push(i);
    });
    if (differing.length === 0) return;
    const entries = await this.#options.store.bucketEntries(remote.prefix, differing);
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
    // Where this side holds everything the peer has, one patch settles the document; otherwise ask for
    // the peer's patch, and the peer falls back to Automerge sync when both sides changed.
    const patches: PatchItem[] = [];
    const wants: Array<{ id: string; heads: string[] }> = [];
    for (const id of differing) {
      const doc = await this.#options.store.get<unknown>(id);
      const theirs = remoteHeads.get(id) ?? [];
      if (doc !== undefined && A.hasHeads(doc, theirs)) patches.push(makePatch(id, doc, theirs));
      else wants.push({ id, heads: doc === undefined ? [] : A.getHeads(doc) });
    }
    await this.#sendPatches(patches);
    for (let i = 0; i < wants.length; i += 5000) await this.channel.send({ t: "want", items: wants.slice(i, i + 5000) });
  }

  async #onWant(message: WantMessage): Promise<void> {
    const patches: PatchItem[] = [];
    const concurrent: string[] = [];
    for (const { id, heads } of message.items) {
      if (!this.#replicated(id)) continue;
      const doc = await this.#options.store.get<unknown>(id);
      if (doc === undefined) continue;
      if (A.hasHeads(doc, heads)) patches.push(makePatch(id, doc, heads));
      else concurrent.push(id);
    }
    await this.#sendPatches(patches);
    await this.#syncIds(concurrent);
  }

  async #onPatch(message: PatchMessage): Promise<void> {
    const fallback: string[] = [];
    // Replication is background work: a frame of many documents is applied a slice per turn of the
    // event loop, so requests and answers arriving meanwhile are not held up behind all of it.
    for (let i = 0; i < message.items.length; i += PATCH_ITEMS_PER_TURN) {
      if (i > 0) await nextTurn();
      await this.#applyPatches(message.items.slice(i, i + PATCH_ITEMS_PER_TURN), fallback);
    }
    await this.#syncIds(fallback);
  }

  async #applyPatches(items: PatchMessage["items"], fallback: string[]): Promise<void> {
    const { store } = this.#options;
    await Promise.all(
      items.map(async ({ id, since, heads, changes }) => {
        if (!this.#replicated(id)) return;
        this.#options.applying.set(id, this.channel.peer);
        try {
          if (since.length === 0 && (await store.receiveNew(id, changes))) return;
          await store.update<unknown>(
            id,
            (current) => {
              if (current !== undefined && A.hasHeads(current, heads)) return current;
              // Missing dependencies would leave the heads unmoved: let Automerge sync work out what is missing.
              if (since.length > 0 && (current === undefined || !A.hasHeads(current, since))) {
                fallback.push(id);
                return current;
              }
              // A document new here loads whole: far cheaper than applying it to an empty one.
              return current === undefined ? A.load<unknown>(changes) : A.loadIncremental(current, changes);
            },
            "remote",
          );
        } catch (err) {
          this.#options.onError(new Error(`patch of ${id} from ${this.channel.peer} failed: ${(err as Error).message}`, { cause: err }));
        } finally {
          this.#options.applying.delete(id);
        }
      }),
    );
  }

  async #sendPatches(patches: PatchItem[]): Promise<void> {
    const size = (item: PatchItem): number => item.changes.byteLength + item.id.length + 70 * (item.heads.length + item.since.length);
    for (const items of runsBySize(patches, size, this.#options.targetFrameBytes)) await this.channel.send({ t: "patch", items });
  }

  async #onDocs(message: DocsMessage): Promise<void> {
    const { store } = this.#options;
    const replies = await Promise.all(
      message.items.map(async ({ id, msg }) => {
        if (!this.#replicated(id)) return undefined;
        let state = this.#takeState(id);
        let doc: A.Doc<unknown> | undefined;
        this.#options.applying.set(id, this.channel.peer);
        try {
          doc = await store.update<unknown>(
            id,
            (current) => {
              // Receiving outdates the document it is given even when no heads move, and the store keeps its
              // cached copy in that case; receiving into a copy keeps the cached document writable.
              const [next, nextState] = A.receiveSyncMessage(current === undefined ? A.init<unknown>() : A.clone(current), state, msg);
              state = nextState;
              // A heads-only message must not create an empty document, and an unchanged copy is dropped at once:
              // wasm memory is not the garbage collector's, and leftover copies slow every later allocation.
              const unchanged = current === undefined ? A.getHeads(next).length === 0 : sameHeads(A.getHeads(current), A.getHeads(next));
              if (!unchanged) return next;
              A.free(next);
              return current;
            },
            "remote",
          );
        } catch (err) {
          this.#options.onError(new Error(`sync of ${id} from ${this.channel.peer} failed: ${(err as Error).message}`, { cause: err }));
          return undefined;
        } finally {
          this.#options.applying.delete(id);
        }
        return this.#generate(id, doc, state);
      }),
    );
    await this.#sendDocs(replies.filter((r): r is { id: string; msg: Uint8Array } => r !== undefined));
  }

  async #syncIds(ids: readonly string[]): Promise<void> {
    const { store } = this.#options;
    const out: Array<{ id: string; msg: Uint8Array }> = [];
    for (const id of ids) {
      const item = this.#generate(id, await store.get<unknown>(id), this.#takeState(id));
      if (item !== undefined) out.push(item);
    }
    await this.#sendDocs(out);
  }

  #generate(id: string, doc: A.Doc<unknown> | undefined, state: A.SyncState): { id: string; msg: Uint8Array } | undefined {
    const [nextState, msg] = A.generateSyncMessage(doc ?? EMPTY, state);
    this.#keepState(id, nextState);
    return msg === null ? undefined : { id, msg };
  }

  async #sendDocs(docs: Array<{ id: string; msg: Uint8Array }>): Promise<void> {
    const size = (item: { id: string; msg: Uint8Array }): number => item.msg.byteLength + item.id.length + 8;
    for (const items of runsBySize(docs, size, this.#options.targetFrameBytes)) await this.channel.send({ t: "docs", items });
  }

  #takeState(id: string): A.SyncState {
    const state = this.#states.get(id);
    if (state === undefined) return A.initSyncState();
    this.#states.delete(id);
    return state;
  }

  #keepState(id: string, state: A.SyncState): void {
    this.#states.delete(id);
    this.#states.set(id, state);
    while (this.#states.size > this.#options.maxSyncStates) {
      const oldest = this.#states.keys().next().value;
      if (oldest === undefined) break;
      this.#states.delete(oldest);
    }
  }
}
