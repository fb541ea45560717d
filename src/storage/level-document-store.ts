import { createHash } from "node:crypto";
import * as A from "@automerge/automerge";
import { InvalidInputError, StorageError } from "../contract/errors.js";
import { ChunkedDocuments, CorruptDocumentError, storedBytes, type ChunkLayout } from "./chunked-documents.js";
import type { ChangedSince, ChangeOrigin, DocumentChange, DocumentStore, LogPosition, StoreSummary } from "./document-store.js";
import { sameHeads, SUMMARY_BUCKETS } from "./document-store.js";
import type { Database } from "./level-database.js";
import { readFirstChange } from "./first-change.js";
import { createChangeLog, type ChangeLog } from "./change-log.js";
import { levelKeyValues } from "./key-value.js";
import { docRootListReader, docRootReader, type RootListReader, type RootReader } from "./root-reader.js";
import { WriteBatcher, type WriteOp } from "./write-batcher.js";
import { KeyedTurns } from "../util/keyed-turns.js";

/** Options of {@link LevelDocumentStore}. */
export interface LevelDocumentStoreOptions {
  /** Automerge actor id (hex) used when loading documents, so this node's changes carry one actor. */
  actorId?: string;
  /** Documents kept in memory at most; least recently used ones are evicted beyond it. Default 2,000. */
  maxCachedDocs?: number;
  /** Incremental chunks per document before they are folded into one snapshot. Default 16. */
  compactAfterChunks?: number;
  /** Shared group-commit writer, so other modules' writes can land in the same atomic batch. */
  batcher?: WriteBatcher;
  /** Database path, for error messages. */
  path?: string;
}

/** Extras of {@link LevelDocumentStore.update} beyond the {@link DocumentStore} contract. */
export interface UpdateExtras<T> {
  /** More writes (derived indexes) to commit in the same atomic batch as the document. */
  ops?: (doc: A.Doc<T>) => WriteOp[];
  /**
   * The caller knows the id is fresh (a new UUID): skip the storage read that
   * would look for an existing document.
   */
  isNew?: boolean;
  /**
   * `fn` wrote through the document's backend (`A.getBackend`) rather than
   * `A.change`: the document it returns may be the one it was given, with new
   * heads and a JS object that no longer shows them. The store then judges change
   * by heads, and hands out fresh views of the document instead of the object.
   *
   * The store then owns the document: `update` resolves to undefined, and the
   * document's memory is freed as soon as it leaves the cache (unless views of
   * it were handed out), rather than whenever the garbage collector finalises it.
   * Thousands of Automerge documents left to finalisation keep V8 running full
   * collections back to back.
   */
  raw?: boolean;
  /** The peer a remote change came from; its {@link DocumentChange} names it. */
  from?: string;
}

/** Extras of {@link LevelDocumentStore.receiveNew}. */
export interface ReceiveExtras {
  /** More writes to commit in the same atomic batch as the document (the writer's signature). */
  ops?: WriteOp[];
  /**
   * Sees the received document's heads, root values, root lists and the actors
   * of its changes before it is stored; throws to refuse it, writing nothing.
   */
  check?: (heads: A.Heads, root: RootReader, lists: RootListReader, actors: () => string[]) => void;
  /** The peer the document came from; its {@link DocumentChange} names it. */
  from?: string;
}

/**
 * Records kept beside the documents under a prefix that other nodes write (an
 * index of them), derived from what a document says before and after a remote
 * change and committed in the same batch as the change: a crash between the two
 * could otherwise leave a received document out of its index for good.
 */
export interface RemoteDerivation<S> {
  prefix: string;
  /**
   * What the derived records depend on, read from the document's root, or
   * undefined when the document does not say yet (a partial sync). A document
   * received whole may be read without ever being loaded (see receiveNew).
   */
  read(root: RootReader): S | undefined;
  /** The writes that take the derived records from `before` to `after`. */
  ops(id: string, before: S | undefined, after: S | undefined): WriteOp[];
}

interface CacheEntry {
  doc: A.Doc<unknown>;
  heads: A.Heads;
  /** Number of incremental chunk keys stored after the snapshot. */
  chunks: number;
  /** Written through the backend since it was last materialised: its JS object may lag its heads. */
  raw: boolean;
  /** Handed out (itself or a view sharing its memory): only the garbage collector may free it. */
  shared: boolean;
}

const HEADS = "heads:";
/**
 * Where LevelDocumentStore keeps a document's snapshot and chunks. Control
 * characters never occur in ids (see validateDocumentId), so the separator cannot either.
 */
export const DOCUMENT_LAYOUT: ChunkLayout = { keyPrefix: "doc:", separator: "\u0001", snapshot: "s", chunk: "c:", chunkDigits: 10 };
const MAX_ID_LENGTH = 512;
/** The digest a summary gives a bucket that holds no document. */
export const EMPTY_DIGEST = createHash("sha256").digest("hex");

/** Checks a document id: printable, bounded, namespaced. */
export function validateDocumentId(id: string): void {
  if (id.length === 0 || id.length > MAX_ID_LENGTH) throw new InvalidInputError(`must be 1..${MAX_ID_LENGTH} characters`, "documentId");
  // Control characters would break the key layout (SEP) and are never meaningful in ids.
  if (/[\u0000-\u001f\u007f]/.test(id)) throw new InvalidInputError("must not contain control characters", "documentId");
  if (!id.includes("/")) throw new InvalidInputError("must be namespaced as <namespace>/<name>", "documentId");
}

/** Which summary bucket an id falls into: the first byte of its SHA-256. */
export function bucketOf(id: string): number {
  return createHash("sha256").update(id).digest()[0]!;
}

function encodeHeads(heads: A.Heads): Uint8Array {
  return Buffer.from([...heads].sort().join(","), "utf8");
}

function decodeHeads(bytes: Uint8Array): A.Heads {
  const s = Buffer.from(bytes).toString("utf8");
  return s.length === 0 ? [] : s.split(",");
}

/** Free a document's memory now, unless someone else may still hold it. */
function release(doc: A.Doc<unknown>, shared: boolean): void {
  if (!shared) A.free(doc);
}

/**
 * {@link DocumentStore} on LevelDB.
 *
 * Key layout, kept by {@link ChunkedDocuments}: `doc:<id>\x01s` holds the compacted snapshot, `doc:<id>\x01c:<n>` the
 * incremental chunks after it, and `heads:<id>` the current heads (the index that
 * answers `ids`, `heads` and `summary` without loading documents).
 */
export class LevelDocumentStore implements DocumentStore {
  private readonly cache = new Map<string, CacheEntry>();
  /** Writes of each document, one after another. */
  private readonly locks = new KeyedTurns();
  private readonly listeners = new Set<(change: DocumentChange) => void>();
  private readonly derivations = new Set<RemoteDerivation<unknown>>();
  private readonly batcher: WriteBatcher;
  private readonly documents: ChunkedDocuments;
  private readonly maxCached: number;
  private closed = false;
  private readonly log: ChangeLog;

  constructor(private readonly db: Database, private readonly options: LevelDocumentStoreOptions = {}) {
    this.batcher = options.batcher ?? new WriteBatcher(db);
    this.maxCached = options.maxCachedDocs ?? 2000;
    this.documents = new ChunkedDocuments(levelKeyValues(db), DOCUMENT_LAYOUT, options.compactAfterChunks ?? 16);
    this.log = createChangeLog(db, this.batcher);
  }

  /** The change log's epoch and last durable position. */
  logPosition(): LogPosition {
    return { epoch: this.log.epoch, seq: this.log.position() };
  }

  /**
   * Documents under `prefixes` changed after position `after` of the change log
   * of `epoch`, with their heads now: what a peer that held everything up to
   * `after` lacks at most, leaving out those whose last change came from
   * `asker`. Undefined when the position is not of this log (another epoch, or
   * past its end): the caller must compare everything instead. Costs in
   * proportion to the documents others than the asker changed, not to those
   * stored nor to those the asker sent.
   */
  async changedSince(epoch: string, after: number, prefixes: readonly string[], asker?: string): Promise<ChangedSince | undefined> {
    const upto = this.log.position();
    if (epoch !== this.log.epoch || after > upto) return undefined;
    const entries: Array<{ id: string; heads: string[] }> = [];
    // Its last change came from the asker, which sent it from what it had stored: it holds it.
    for (const { id } of await this.log.changedAfter(after, upto, prefixes, asker)) {
      const heads = this.storedHeads(id);
      if (heads !== undefined) entries.push({ id, heads: decodeHeads(heads) });
    }
    return { epoch, upto, entries };
  }

  async get<T>(id: string): Promise<A.Doc<T> | undefined> {
    const entry = this.cache.get(id) ?? (await this.load(id));
    if (!entry) return undefined;
    entry.shared = true;
    // A view pins content and heads together; the raw-written object itself shows neither reliably.
    return (entry.raw ? A.view(entry.doc, entry.heads) : entry.doc) as A.Doc<T>;
  }

  update<T>(
    id: string,
    fn: (doc: A.Doc<T> | undefined) => A.Doc<T> | undefined,
    origin: ChangeOrigin = "local",
    extras: UpdateExtras<T> = {},
  ): Promise<A.Doc<T> | undefined> {
    validateDocumentId(id);
    this.assertOpen();
    return this.locks.run(id, () => this.applyUpdate(id, fn, origin, extras));
  }


  /**
   * Store a new document given as saved bytes and heads (built elsewhere, for
   * instance on a worker thread), with `ops` in the same atomic batch. The id must
   * hold no document yet. Nothing is cached: the first read loads it.
   */
  insert(id: string, bytes: Uint8Array, heads: A.Heads, ops: WriteOp[] = [], origin: ChangeOrigin = "local"): Promise<void> {
    validateDocumentId(id);
    this.assertOpen();
    return this.locks.run(id, async () => {
      const cached = this.cache.get(id);
      if (cached) {
        this.cache.delete(id);
        release(cached.doc, cached.shared);
      }
      await this.storeNew(id, bytes, heads, ops, origin, undefined);
    });
  }

  /** Write a new document's bytes as its snapshot, with its heads and `ops`, then tell the listeners. */
  private async storeNew(id: string, bytes: Uint8Array, heads: A.Heads, ops: WriteOp[], origin: ChangeOrigin, from: string | undefined): Promise<void> {
    await this.batcher.write([this.documents.insert(id, bytes), { type: "put", key: HEADS + id, value: encodeHeads(heads) }, ...this.log.record(id, from), ...ops]);
    const change: DocumentChange = { id, origin, heads, before: [], changes: bytes, ...(from !== undefined && { from }) };
    for (const listener of this.listeners) listener(change);
  }

  receiveNew(id: string, bytes: Uint8Array, origin: ChangeOrigin = "remote", extras: ReceiveExtras = {}): Promise<boolean> {
    validateDocumentId(id);
    this.assertOpen();
    return this.locks.run(id, async () => {
      if (this.cache.has(id) || this.storedHeads(id) !== undefined) return false;
      const received = this.checkReceived(id, origin, bytes, extras.check);
      if (received === undefined) return false;
      await this.storeNew(id, bytes, received.heads, [...received.derived, ...(extras.ops ?? [])], origin, extras.from);
      return true;
    });
  }

  /**
   * The heads of a whole document given as bytes, and the records derived from
   * it; undefined when the bytes are not Automerge or miss changes they depend on
   * (those would sit unapplied, and the stored bytes would not load). A first
   * change that needs nothing else is read without Automerge loading it; anything
   * else is loaded into a bare backend, freed at once. `check` sees the result
   * before anything is decided, and refuses it by throwing.
   */
  private checkReceived(id: string, origin: ChangeOrigin, bytes: Uint8Array, check?: ReceiveExtras["check"]): { heads: A.Heads; derived: WriteOp[] } | undefined {
    const derive = (root: RootReader): WriteOp[] => this.derivationsBefore(id, origin, undefined).flatMap(([d]) => d.ops(id, undefined, d.read(root)));
    const first = readFirstChange(bytes);
    if (first !== undefined) {
      check?.(first.heads, first.root, first.lists, () => [first.actor]);
      return { heads: first.heads, derived: derive(first.root) };
    }
    const doc = this.options.actorId ? A.init<unknown>({ actor: this.options.actorId }) : A.init<unknown>();
    try {
      const backend = A.getBackend(doc);
      try {
        backend.loadIncremental(bytes);
      } catch {
        return undefined;
      }
      const heads = backend.getHeads();
      if (heads.length === 0 || backend.getMissingDeps().length > 0) return undefined;
      const root = docRootReader(doc);
      check?.(heads, root, docRootListReader(doc), () => A.getAllChanges(doc).map((c) => A.decodeChange(c).actor));
      return { heads, derived: derive(root) };
    } finally {
      A.free(doc);
    }
  }

  /**
   * Forget a document received from elsewhere: its changes, its heads and the
   * records derived from it, in one batch with `ops`; resolves to the bytes it
   * held (undefined when it held none). Used to quarantine content that must not
   * be read as state: the caller keeps those bytes as evidence. Listeners are not
   * told; nothing replicates a removal.
   */
  remove(id: string, ops: WriteOp[] = []): Promise<Uint8Array | undefined> {
    validateDocumentId(id);
    this.assertOpen();
    return this.locks.run(id, async () => {
      const stored = await this.documents.read(id);
      if (stored.keys.length === 0 && this.storedHeads(id) === undefined) return undefined;
      const bytes = storedBytes(stored);
      let derived: WriteOp[] = [];
      try {
        const doc = A.load<unknown>(bytes);
        derived = this.derivationsBefore(id, "remote", doc).flatMap(([d, was]) => d.ops(id, was, undefined));
        A.free(doc);
      } catch {
        // Bytes that do not load derived nothing readable either.
      }
      const cached = this.cache.get(id);
      if (cached) {
        this.cache.delete(id);
        release(cached.doc, cached.shared);
      }
      await this.batcher.write([...this.documents.remove(stored), { type: "del", key: HEADS + id }, ...this.log.forget(id), ...derived, ...ops]);
      return bytes;
    });
  }

  async *ids(prefix = ""): AsyncIterable<string> {
    for await (const key of this.db.keys({ gte: HEADS + prefix, lt: HEADS + prefix + "\uffff" })) {
      yield key.slice(HEADS.length);
    }
  }

  /** True when a document `id` is stored (or being written), read without loading it. */
  holds(id: string): boolean {
    return this.cache.has(id) || this.storedHeads(id) !== undefined;
  }

  async heads(id: string): Promise<A.Heads | undefined> {
    const cached = this.cache.get(id);
    if (cached) return cached.heads;
    const bytes = this.storedHeads(id);
    return bytes === undefined ? undefined : decodeHeads(bytes);
  }

  async summary(prefix: string): Promise<StoreSummary> {
    const hashes = Array.from({ length: SUMMARY_BUCKETS }, () => createHash("sha256"));
    const used = new Set<number>();
    let count = 0;
    for await (const [key, value] of this.db.iterator({ gte: HEADS + prefix, lt: HEADS + prefix + "\uffff" })) {
      const id = key.slice(HEADS.length);
      const b = bucketOf(id);
      used.add(b);
      // Keys arrive sorted, so each bucket hashes its entries in one canonical order.
      hashes[b]!.update(id).update("\n").update(value).update("\n");
      count++;
    }
    return {
      prefix,
      count,
      buckets: hashes.map((h, i) => (used.has(i) ? h.digest("hex") : EMPTY_DIGEST)),
    };
  }

  async bucketEntries(prefix: string, buckets: readonly number[]): Promise<Array<{ id: string; heads: A.Heads }>> {
    const wanted = new Set(buckets);
    const out: Array<{ id: string; heads: A.Heads }> = [];
    for await (const [key, value] of this.db.iterator({ gte: HEADS + prefix, lt: HEADS + prefix + "\uffff" })) {
      const id = key.slice(HEADS.length);
      if (wanted.has(bucketOf(id))) out.push({ id, heads: decodeHeads(value) });
    }
    return out;
  }

  onChange(listener: (change: DocumentChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Keep records derived from remotely changed documents, atomically with each change; returns a function that stops it. */
  deriveFromRemote<S>(derivation: RemoteDerivation<S>): () => void {
    const d = derivation as RemoteDerivation<unknown>;
    this.derivations.add(d);
    return () => this.derivations.delete(d);
  }

  /** The derivations that apply to a remote change of `id`, with what each read from the document before it. */
  private derivationsBefore(id: string, origin: ChangeOrigin, before: A.Doc<unknown> | undefined): Array<[RemoteDerivation<unknown>, unknown]> {
    if (origin !== "remote" || this.derivations.size === 0) return [];
    const out: Array<[RemoteDerivation<unknown>, unknown]> = [];
    for (const d of this.derivations) if (id.startsWith(d.prefix)) out.push([d, before === undefined ? undefined : d.read(docRootReader(before))]);
    return out;
  }

  /**
   * Write `ops` (records that are not documents, such as write-ahead records and
   * indexes) in the same group commit as document updates; with `now`, without
   * waiting for the end of the turn (see {@link WriteBatcher.writeNow}).
   */
  write(ops: WriteOp[], options: { now?: boolean } = {}): Promise<void> {
    this.assertOpen();
    return options.now === true ? this.batcher.writeNow(ops) : this.batcher.write(ops);
  }

  /** Resolves when every write issued so far is durable. */
  flush(): Promise<void> {
    return this.batcher.drain();
  }

  evict(id: string): void {
    const entry = this.cache.get(id);
    if (entry === undefined || this.locks.has(id)) return;
    this.cache.delete(id);
    release(entry.doc, entry.shared);
  }

  /** Number of documents currently held in memory. */
  cachedCount(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.locks.settled();
    await this.batcher.drain();
    this.closed = true;
    for (const entry of this.cache.values()) release(entry.doc, entry.shared);
    this.cache.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError("STORAGE_CORRUPT", this.options.path ?? "document store", "store is closed");
  }

  private async applyUpdate<T>(
    id: string,
    fn: (doc: A.Doc<T> | undefined) => A.Doc<T> | undefined,
    origin: ChangeOrigin,
    extras: UpdateExtras<T>,
  ): Promise<A.Doc<T> | undefined> {
    const entry = this.cache.get(id) ?? (extras.isNew ? undefined : await this.load(id));
    // A caller using A.change needs the object to show what the backend holds.
    if (entry?.raw && !extras.raw) this.refresh(entry);
    const before = entry?.doc as A.Doc<T> | undefined;
    if (entry && !extras.raw) entry.shared = true;
    // Read before `fn`: applying changes can leave the document it was given outdated and unreadable.
    const derived = this.derivationsBefore(id, origin, before);
    let next: A.Doc<T> | undefined;
    try {
      next = fn(before);
    } catch (err) {
      // `fn` may have applied changes to the cached document before refusing them (loadIncremental works in
      // place): drop it, so the next read loads what storage holds.
      if (entry) {
        this.cache.delete(id);
        release(entry.doc, entry.shared);
      }
      throw err;
    }
    const result = extras.raw ? undefined : next;
    if (next === undefined || (next === before && !extras.raw)) return extras.raw ? undefined : before;
    const heads = A.getHeads(next);
    if (entry && sameHeads(entry.heads, heads)) {
      // Nothing to store, but the caller may have handed back a new object (receiveSyncMessage
      // marks the one it was given outdated even when nothing arrives): keep the current one.
      if (!extras.raw && next !== before) entry.doc = next;
      return result;
    }

    const { ops, chunks, changes }: { ops: WriteOp[]; chunks: number; changes: Uint8Array } = this.documents.save(id, next, entry);
    ops.push({ type: "put", key: HEADS + id, value: encodeHeads(heads) }, ...this.log.record(id, extras.from));
    if (extras.ops) for (const op of extras.ops(next)) ops.push(op);
    for (const [d, was] of derived) for (const op of d.ops(id, was, d.read(docRootReader(next)))) ops.push(op);

    await this.batcher.write(ops);
    const raw = extras.raw === true || (entry?.raw === true && next === before);
    this.remember(id, { doc: next, heads, chunks, raw, shared: next === before ? entry!.shared : !extras.raw });
    const change: DocumentChange = { id, origin, heads, before: entry?.heads ?? [], changes, ...(extras.from !== undefined && { from: extras.from }) };
    for (const listener of this.listeners) listener(change);
    return result;
  }

  /**
   * A document's stored heads record, read synchronously: a heads record is a
   * few dozen bytes that LevelDB serves from its memtable or block cache in about
   * a microsecond, while an asynchronous read costs a thread-pool round trip of
   * ~45 us and several times the CPU, on paths taken for every replicated task.
   */
  private storedHeads(id: string): Uint8Array | undefined {
    return this.db.getSync(HEADS + id);
  }

  private async load(id: string): Promise<CacheEntry | undefined> {
    // Every stored document has its heads key, written in the batch of each change. Sync asks for many ids this
    // node has never held, and a point read tells that far more cheaply than opening an iterator.
    if (this.storedHeads(id) === undefined) return undefined;
    let loaded: { doc: A.Doc<unknown>; chunks: number } | undefined;
    try {
      loaded = await this.documents.load(id, { actor: this.options.actorId || undefined });
    } catch (err) {
      if (!(err instanceof CorruptDocumentError)) throw err;
      throw new StorageError("STORAGE_CORRUPT", this.options.path ?? "document store", err.message, err.cause);
    }
    if (loaded === undefined) return undefined;
    const entry: CacheEntry = { doc: loaded.doc, heads: A.getHeads(loaded.doc), chunks: loaded.chunks, raw: false, shared: false };
    // A concurrent load of the same id may have finished first; keep one copy.
    const raced = this.cache.get(id);
    if (raced) return raced;
    this.remember(id, entry);
    return entry;
  }

  /**
   * Replace a raw-written entry's document by a writable copy whose object shows
   * its heads: a clone of a fresh view, keeping the actor so this node's history
   * stays one actor.
   */
  private refresh(entry: CacheEntry): void {
    const stale = entry.doc;
    entry.doc = A.clone(A.view(stale, entry.heads), { actor: A.getActorId(stale) });
    entry.raw = false;
    release(stale, entry.shared);
    entry.shared = false;
  }

  private remember(id: string, entry: CacheEntry): void {
    this.cache.delete(id);
    this.cache.set(id, entry);
    if (this.cache.size <= this.maxCached) return;
    for (const victim of this.cache.keys()) {
      if (this.cache.size <= this.maxCached) break;
      // A document with an update in flight stays: evicting it would make the writer reload a stale copy.
      if (this.locks.has(victim)) continue;
      const evicted = this.cache.get(victim)!;
      this.cache.delete(victim);
      release(evicted.doc, evicted.shared);
    }
  }
}
