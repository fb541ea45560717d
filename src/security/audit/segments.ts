import * as A from "@automerge/automerge";
import type { AbstractLevel } from "abstract-level";
import { CoderClawError } from "../../contract/errors.js";
import { ChunkedDocuments, CorruptDocumentError, type ChunkLayout } from "../../storage/chunked-documents.js";
import { levelKeyValues, type KeyValueOp, type KeyValueStore } from "../../storage/key-value.js";

/**
 * One bounded piece of an author's log, as an Automerge document. Entries are kept
 * as their stored bytes (one list element each) with their 32-byte hashes in a
 * parallel list: one op per entry and list instead of one per body field keeps
 * appends and loads cheap, because Automerge's per-op cost dominates both. Hashes
 * are bytes rather than ImmutableString: measured here, 1,000 hex ImmutableStrings
 * add ~37 ms to a segment's changes, 1,000 byte values next to nothing.
 */
export type SegmentDoc = {
  author: A.ImmutableString;
  segment: number;
  entries: Uint8Array[];
  hashes: Uint8Array[];
  /** Authentic entries that conflict with this segment's chain (same author and seq, different hash): fork evidence. */
  forks: Uint8Array[];
};

/** The database type the audit log accepts: a `Level` or any sublevel of one. */
export type AuditDatabase = AbstractLevel<any, any, any>;

/** A group commit that writes operations on a sublevel atomically; see `AuditLogOptions.write`. */
export type AuditWrite = (ops: Array<BatchOp & { sublevel: AuditDatabase }>) => Promise<void>;

/** A signed entry held in the journal until a fold moves it into its segment. */
export interface JournaledEntry {
  seq: number;
  hash: Uint8Array;
  bytes: Uint8Array;
}

type BatchOp = KeyValueOp;

/** A segment write computed ahead of applying it; see {@link SegmentStore.prepare}. */
export interface PreparedWrite {
  ops: BatchOp[];
  /** The segment's chunk count once applied. */
  chunks: number;
  /** The chain the write extends. */
  author: string;
}

/** Automerge document id of a segment: `audit/<author>/<segmentNo>`. */
export function segmentDocId(author: string, segment: number): string {
  return `audit/${encodeURIComponent(author)}/${String(segment).padStart(10, "0")}`;
}

// Compacting every 64 chunks bounds load time without rewriting the snapshot on every commit.
const COMPACT_AFTER_CHUNKS = 64;
/** Where audit segments' snapshots and chunks lie; segment ids hold no `/snap` or `/chunk/` (authors are URI-encoded). */
export const SEGMENT_LAYOUT: ChunkLayout = { keyPrefix: "", separator: "/", snapshot: "snap", chunk: "chunk/", chunkDigits: 6 };

interface LoadedSegment {
  doc: A.Doc<SegmentDoc>;
  chunks: number;
}

/**
 * LevelDB layout of audit segments, under the sublevel given (the segments kept
 * by {@link ChunkedDocuments}): `<docId>/snap` holds a compacted snapshot, `<docId>/chunk/<n>` incremental changes
 * written since, `head/<author>` the last seq and hash of each chain, and
 * `journal/<author>/<seq>` this node's entries made durable but not yet folded
 * into their segment (the entry's 32-byte hash, then its bytes).
 */
export class SegmentStore {
  readonly #sublevel: AbstractLevel<unknown, string, Uint8Array>;
  readonly #kv: KeyValueStore;
  readonly #documents: ChunkedDocuments;
  readonly #write: AuditWrite | undefined;
  /** Authors with a chain, once read from storage; every write adds its own. */
  #authors: Promise<Set<string>> | undefined;

  constructor(db: AuditDatabase, write?: AuditWrite) {
    this.#sublevel = db.sublevel<string, Uint8Array>("audit", { keyEncoding: "utf8", valueEncoding: "view" });
    this.#kv = levelKeyValues(this.#sublevel);
    this.#documents = new ChunkedDocuments(this.#kv, SEGMENT_LAYOUT, COMPACT_AFTER_CHUNKS);
    this.#write = write;
  }

  /** Loads a segment from storage; undefined when absent. */
  async load(author: string, segment: number): Promise<LoadedSegment | undefined> {
    try {
      return await this.#documents.load<SegmentDoc>(segmentDocId(author, segment));
    } catch (err) {
      if (!(err instanceof CorruptDocumentError)) throw err;
      throw new CorruptSegmentError(author, segment, err.cause);
    }
  }

  /** A new, empty segment document. */
  create(author: string, segment: number): A.Doc<SegmentDoc> {
    return A.from<SegmentDoc>({ author: new A.ImmutableString(author), segment, entries: [], hashes: [], forks: [] });
  }

  /**
   * The write that persists the changes made to `doc` since its last save, with the
   * chain's new head, as one atomic batch, and the segment's chunk count after it.
   * Computed synchronously, so the next change can be made while this one is written;
   * writes of one segment must then be applied in the order they were prepared.
   */
  prepare(author: string, segment: number, doc: A.Doc<SegmentDoc>, chunks: number, head: Uint8Array): PreparedWrite {
    const saved = this.#documents.save(segmentDocId(author, segment), doc, { chunks });
    saved.ops.push({ type: "put", key: headKey(author), value: head });
    return { ops: saved.ops, chunks: saved.chunks, author };
  }

  /** Applies a prepared write. */
  async write(prepared: PreparedWrite): Promise<void> {
    const sublevel = this.#sublevel;
    await (this.#write === undefined ? this.#kv.batch(prepared.ops) : this.#write(prepared.ops.map((op) => ({ ...op, sublevel }))));
    if (this.#authors !== undefined) (await this.#authors).add(prepared.author);
  }

  /** The write that makes entries durable in the journal, with the chain's new head, before any segment holds them. */
  journalWrite(author: string, entries: readonly JournaledEntry[], head: Uint8Array): PreparedWrite {
    const ops: BatchOp[] = entries.map((e) => ({ type: "put", key: journalKey(author, e.seq), value: Buffer.concat([e.hash, e.bytes]) }));
    ops.push({ type: "put", key: headKey(author), value: head });
    return { ops, chunks: 0, author };
  }

  /** Journaled entries of an author, by seq. */
  async journal(author: string): Promise<JournaledEntry[]> {
    const prefix = `journal/${encodeURIComponent(author)}/`;
    const out: JournaledEntry[] = [];
    for await (const [key, value] of this.#kv.entries({ gte: prefix, lt: `${prefix.slice(0, -1)}0` })) {
      out.push({ seq: Number(key.slice(prefix.length)), hash: value.subarray(0, 32), bytes: value.subarray(32) });
    }
    return out;
  }

  /** Operations removing journaled entries (once a segment write holds them). */
  journalDeletes(author: string, seqs: readonly number[]): BatchOp[] {
    return seqs.map((seq) => ({ type: "del", key: journalKey(author, seq) }));
  }

  /** The encoded head record of a chain, if stored. */
  async head(author: string): Promise<Uint8Array | undefined> {
    return this.#kv.get(headKey(author));
  }

  /**
   * Authors with a chain in storage, sorted: those with a head record and those with
   * segments, so a chain whose head record is lost is still listed and verified.
   */
  async authors(): Promise<string[]> {
    // Asked for every tip a member sends (to compare heads): read storage once, then keep the set as writes add to it.
    this.#authors ??= this.#readAuthors().catch((error: unknown) => {
      this.#authors = undefined;
      throw error;
    });
    return [...(await this.#authors)].sort();
  }

  async #readAuthors(): Promise<Set<string>> {
    const authors = new Set<string>();
    for await (const key of this.#kv.keys({ gte: "head/", lt: "head0" })) authors.add(decodeURIComponent(key.slice("head/".length)));
    let key = await this.#firstKeyFrom("audit/");
    while (key !== undefined && key.startsWith("audit/")) {
      const encoded = key.slice("audit/".length, key.indexOf("/", "audit/".length));
      authors.add(decodeURIComponent(encoded));
      // Skip the rest of this author's segments in one seek.
      key = await this.#firstKeyFrom(`audit/${encoded}0`);
    }
    return authors;
  }

  async #firstKeyFrom(gte: string): Promise<string | undefined> {
    for await (const key of this.#kv.keys({ gte, limit: 1 })) return key;
    return undefined;
  }

  /** Segment numbers stored for an author, ascending. */
  async segments(author: string): Promise<number[]> {
    const prefix = `audit/${encodeURIComponent(author)}/`;
    const segments: number[] = [];
    for await (const id of this.#documents.ids(prefix)) segments.push(Number(id.slice(prefix.length)));
    return segments;
  }
}

/** A stored segment that does not load: named by chain and segment so the damage can be found. */
export class CorruptSegmentError extends CoderClawError {
  constructor(
    readonly author: string,
    readonly segment: number,
    cause: unknown,
  ) {
    super("STORAGE_CORRUPT", `audit segment ${segment} of chain ${author} is corrupt (${segmentDocId(author, segment)}): ${(cause as Error).message}`, { cause });
  }
}

type SegmentList = "entries" | "hashes" | "forks";

/**
 * Appends values to a segment's lists and commits them as one change, through
 * the document's backend: `A.change` rebuilds the JS object after every change,
 * which made an append cost far more than the entry's signature. The object
 * then no longer shows the appended values: read a segment that was appended to
 * with {@link segmentItem} and {@link segmentItems}, or load it again.
 */
export function appendToSegment(doc: A.Doc<SegmentDoc>, lists: Partial<Record<SegmentList, readonly Uint8Array[]>>): void {
  const h = A.getBackend(doc);
  for (const [list, values] of Object.entries(lists) as Array<[SegmentList, readonly Uint8Array[]]>) {
    if (values.length === 0) continue;
    const obj = listId(h, list);
    // One splice per list: a push finds the list's end afresh each time, which costs
    // several times more per entry than inserting a whole fold's entries at once.
    h.splice(obj, h.length(obj), 0, values as Uint8Array[]);
  }
  if (h.pendingOps() > 0) h.commit(null, Math.floor(Date.now() / 1000));
}

/** The value at `index` of a segment's list, as its backend holds it. */
export function segmentItem(doc: A.Doc<SegmentDoc>, list: SegmentList, index: number): Uint8Array | undefined {
  const h = A.getBackend(doc);
  const value = h.get(listId(h, list), index);
  return value instanceof Uint8Array ? value : undefined;
}

/**
 * The values of a segment's list from `start` on, as its backend holds them: one
 * call into Automerge for the whole list, which costs a tenth of reading the
 * items one by one.
 */
export function segmentItems(doc: A.Doc<SegmentDoc>, list: SegmentList, start = 0): Uint8Array[] {
  const h = A.getBackend(doc);
  const values = h.materialize(listId(h, list)) as unknown[];
  return values.slice(start).filter((v): v is Uint8Array => v instanceof Uint8Array);
}

function listId(h: ReturnType<typeof A.getBackend>, list: SegmentList): string {
  const obj = h.get("_root", list);
  if (typeof obj !== "string") throw new TypeError(`audit segment has no ${list} list`);
  return obj;
}

/** Lowercase hex of bytes. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

function journalKey(author: string, seq: number): string {
  return `journal/${encodeURIComponent(author)}/${String(seq).padStart(16, "0")}`;
}

function headKey(author: string): string {
  return `head/${encodeURIComponent(author)}`;
}
