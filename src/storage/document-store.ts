import type { Doc, Heads } from "@automerge/automerge";

/** Where a document change came from; sync must not echo remote changes back as new work. */
export type ChangeOrigin = "local" | "remote";

/** Emitted after a change to a document is durable. */
export interface DocumentChange {
  id: string;
  origin: ChangeOrigin;
  heads: Heads;
  /** The heads before this change; empty when the document is new here. */
  before: Heads;
  /**
   * Automerge bytes (changes, or a whole saved document) that bring a holder of
   * `before` to `heads`: what was just stored, so sync can pass a change on
   * without loading the document.
   */
  changes: Uint8Array;
  /** For a remote change, the peer it came from: sync does not push it back there. */
  from?: string;
}

/**
 * A store of Automerge documents, one per id. Ids are slash-separated paths whose
 * first segment is a namespace (`task/<uuid>`, `audit/<author>/<segment>`,
 * `mesh/<name>`), so replication can select namespaces by prefix.
 *
 * Documents are loaded lazily, cached while in use and evicted when idle; every
 * update is persisted as an incremental chunk before the returned promise
 * resolves, and chunks are compacted into snapshots in the background.
 */
export interface DocumentStore {
  /** The current document, or undefined when the store holds none with this id. */
  get<T>(id: string): Promise<Doc<T> | undefined>;
  /**
   * Serialised read-modify-write of one document. `fn` receives the current
   * document (undefined when absent) and returns the next one (or the same one
   * for no change). New changes are persisted atomically before resolving.
   */
  update<T>(id: string, fn: (doc: Doc<T> | undefined) => Doc<T> | undefined, origin?: ChangeOrigin): Promise<Doc<T> | undefined>;
  /**
   * Store a document this store does not hold yet, received whole as Automerge
   * bytes (a saved document or all of its changes), keeping the bytes as they came
   * and without building its JS object: loading, materialising and saving a small
   * document again costs several times more than checking it. Resolves false,
   * writing nothing, when the id is already held or the bytes do not make a
   * complete document; the caller then takes the general path ({@link update}),
   * which names what is wrong with them.
   */
  receiveNew(id: string, bytes: Uint8Array, origin?: ChangeOrigin): Promise<boolean>;
  /** Ids of stored documents under a prefix, in lexicographic order. */
  ids(prefix?: string): AsyncIterable<string>;
  /** Current heads of a document without loading it, from the heads index. */
  heads(id: string): Promise<Heads | undefined>;
  /**
   * Compact digest of everything under a prefix: a fixed number of buckets, each the
   * hash of the (id, heads) pairs whose id hashes into it. Two stores holding the
   * same documents at the same heads have identical summaries.
   */
  summary(prefix: string): Promise<StoreSummary>;
  /** (id, heads) of every document under `prefix` whose id hashes into one of `buckets`. */
  bucketEntries(prefix: string, buckets: readonly number[]): Promise<Array<{ id: string; heads: Heads }>>;
  /** Subscribe to durable changes; returns an unsubscribe function. */
  onChange(listener: (change: DocumentChange) => void): () => void;
  /**
   * Let go of a document's memory now, rather than once it is the least
   * recently used of too many: for one not expected to be read or changed soon
   * (an ended workflow's). The next read loads it from storage; a document with
   * an update under way stays.
   */
  evict(id: string): void;
  /** Flush, stop background work and release the underlying database. Idempotent. */
  close(): Promise<void>;
}

/** See {@link DocumentStore.summary}. */
/**
 * Documents a store changed after a position of its change log, with their
 * heads now; see {@link LevelDocumentStore.changedSince}.
 */
export interface ChangedSince {
  /** The log's epoch: positions of one epoch only compare with each other. */
  epoch: string;
  /** The position this answer reaches: every change up to it is in `entries` or was before the position asked. */
  upto: number;
  entries: Array<{ id: string; heads: string[] }>;
}

/** Where a store's change log stands: its epoch and last durable position. */
export interface LogPosition {
  epoch: string;
  seq: number;
}

export interface StoreSummary {
  prefix: string;
  /** Number of documents under the prefix. */
  count: number;
  /** Hex digests, one per bucket; empty buckets have the digest of nothing. */
  buckets: string[];
}

/** Number of summary buckets. Fixed so that two nodes' summaries are comparable. */
export const SUMMARY_BUCKETS = 256;

/** True when two sets of heads hold the same change hashes, in any order. */
export function sameHeads(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((h) => set.has(h));
}
