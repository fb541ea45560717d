import * as A from "@automerge/automerge";
import type { AbstractLevel } from "abstract-level";

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

type Db = AbstractLevel<unknown, string, Uint8Array>;

/** Automerge document id of a segment: `audit/<author>/<segmentNo>`. */
export function segmentDocId(author: string, segment: number): string {
  return `audit/${encodeURIComponent(author)}/${String(segment).padStart(10, "0")}`;
}

// Compacting every 64 chunks bounds load time without rewriting the snapshot on every commit.
const COMPACT_AFTER_CHUNKS = 64;

interface LoadedSegment {
  doc: A.Doc<SegmentDoc>;
  chunks: number;
}

/**
 * LevelDB layout of audit segments, under the sublevel given:
 * `<docId>/snap` holds a compacted snapshot, `<docId>/chunk/<n>` incremental changes
 * written since, and `head/<author>` the last seq and hash of each chain.
 */
export class SegmentStore {
  readonly #db: Db;

  constructor(db: AuditDatabase) {
    this.#db = db.sublevel<string, Uint8Array>("audit", { keyEncoding: "utf8", valueEncoding: "view" }) as unknown as Db;
  }

  /** Loads a segment from storage; undefined when absent. */
  async load(author: string, segment: number): Promise<LoadedSegment | undefined> {
    const id = segmentDocId(author, segment);
    const [snap, chunks] = await Promise.all([this.#db.get(`${id}/snap`), this.#chunks(id)]);
    if (snap === undefined && chunks.length === 0) return undefined;
    const parts = snap === undefined ? chunks : [snap, ...chunks];
    return { doc: A.load<SegmentDoc>(Buffer.concat(parts)), chunks: chunks.length };
  }

  /** A new, empty segment document. */
  create(author: string, segment: number): A.Doc<SegmentDoc> {
    return A.from<SegmentDoc>({ author: new A.ImmutableString(author), segment, entries: [], hashes: [], forks: [] });
  }

  /**
   * Persists the changes made to `doc` since its last save, together with the chain's
   * new head, in one atomic batch. Returns the new chunk count of the segment.
   */
  async persist(author: string, segment: number, doc: A.Doc<SegmentDoc>, chunks: number, head: Uint8Array): Promise<number> {
    const id = segmentDocId(author, segment);
    if (chunks + 1 >= COMPACT_AFTER_CHUNKS) {
      const ops: Array<{ type: "put"; key: string; value: Uint8Array } | { type: "del"; key: string }> = [
        { type: "put", key: `${id}/snap`, value: A.save(doc) },
        { type: "put", key: headKey(author), value: head },
      ];
      for await (const key of this.#db.keys({ gte: `${id}/chunk/`, lt: `${id}/chunk0` })) ops.push({ type: "del", key });
      await this.#db.batch(ops);
      return 0;
    }
    const chunk = A.saveIncremental(doc);
    await this.#db.batch([
      { type: "put", key: `${id}/chunk/${String(chunks).padStart(6, "0")}`, value: chunk },
      { type: "put", key: headKey(author), value: head },
    ]);
    return chunks + 1;
  }

  /** The encoded head record of a chain, if stored. */
  async head(author: string): Promise<Uint8Array | undefined> {
    return this.#db.get(headKey(author));
  }

  /** Authors with a chain in storage, sorted. */
  async authors(): Promise<string[]> {
    const authors: string[] = [];
    for await (const key of this.#db.keys({ gte: "head/", lt: "head0" })) authors.push(decodeURIComponent(key.slice("head/".length)));
    return authors.sort();
  }

  /** Segment numbers stored for an author, ascending. */
  async segments(author: string): Promise<number[]> {
    const prefix = `audit/${encodeURIComponent(author)}/`;
    const seen = new Set<number>();
    for await (const key of this.#db.keys({ gte: prefix, lt: `${prefix.slice(0, -1)}0` })) {
      seen.add(Number(key.slice(prefix.length, prefix.length + 10)));
    }
    return [...seen].sort((a, b) => a - b);
  }

  async #chunks(id: string): Promise<Uint8Array[]> {
    const chunks: Uint8Array[] = [];
    for await (const value of this.#db.values({ gte: `${id}/chunk/`, lt: `${id}/chunk0` })) chunks.push(value);
    return chunks;
  }
}

/** Lowercase hex of bytes. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

function headKey(author: string): string {
  return `head/${encodeURIComponent(author)}`;
}
