import type * as A from "@automerge/automerge";
import { canonicalDecode, canonicalEncode } from "../canonical.js";
import { appendToSegment, hex, segmentItem, type PreparedWrite, type SegmentDoc, type SegmentStore } from "./segments.js";

/** The last seq and hash of a chain; seq 0 and no hash before its first entry. */
export interface Head {
  seq: number;
  hash: string | null;
}

interface OpenSegment {
  segment: number;
  doc: A.Doc<SegmentDoc>;
  chunks: number;
}

/**
 * The chains in storage as their writers see them: the segment documents being
 * appended to and the heads, cached, and the one-writer-at-a-time queue. This
 * node's appends and ingested chains share them: relayed copies of this node's
 * entries land in its own segments.
 */
export class Chains {
  readonly #open = new Map<string, OpenSegment>();
  readonly #heads = new Map<string, Head>();
  #writes: Promise<unknown> = Promise.resolve();

  readonly store: SegmentStore;
  /** Entries per segment document. */
  readonly segmentSize: number;
  /** Most entries committed in one Automerge change. */
  readonly maxBatch: number;
  readonly #forgotten: (author: string) => void;

  /**
   * @param forgotten - told when an author's cached state is dropped after a
   *   failed write, so that state kept beside it is dropped too.
   */
  constructor(store: SegmentStore, sizes: { segmentSize: number; maxBatch: number }, forgotten: (author: string) => void) {
    this.store = store;
    this.segmentSize = sizes.segmentSize;
    this.maxBatch = sizes.maxBatch;
    this.#forgotten = forgotten;
  }

  /** Settles once every write queued so far has. */
  get writes(): Promise<unknown> {
    return this.#writes;
  }

  /** The segment holding `seq`. */
  segmentOf(seq: number): number {
    return Math.floor((seq - 1) / this.segmentSize);
  }

  /** Runs `fn` after every writer queued before it: own appends and ingested chains share segment documents and heads. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#writes.then(fn, fn);
    this.#writes = run.catch(() => undefined);
    return run;
  }

  /** Moves the cached head of a chain (the write that stores it is the caller's). */
  setHead(author: string, head: Head): void {
    this.#heads.set(author, head);
  }

  // Appends consecutive entries starting at `firstSeq` (all within one segment) to the cached segment and head (or keeps `head`, when
  // the chain is already ahead of them); returns the write that persists them.
  async applyToChain(author: string, firstSeq: number, bytes: Uint8Array[], hashes: string[], keepHead?: Head): Promise<PreparedWrite> {
    const segment = this.segmentOf(firstSeq);
    const open = await this.segment(author, segment);
    const doc = open.doc;
    appendToSegment(doc, { entries: bytes, hashes: hashes.map((h) => Buffer.from(h, "hex")) });
    const lastSeq = firstSeq + bytes.length - 1;
    const head: Head = keepHead ?? { seq: lastSeq, hash: hashes.at(-1) ?? null };
    const write = this.store.prepare(author, segment, doc, open.chunks, encodeHead(head));
    this.#heads.set(author, head);
    if (lastSeq % this.segmentSize === 0) this.#open.delete(`${author}\n${segment}`);
    else this.#open.set(`${author}\n${segment}`, { segment, doc, chunks: write.chunks });
    return write;
  }

  /** Appends consecutive entries (see {@link applyToChain}) and stores them. */
  async appendToChain(author: string, firstSeq: number, bytes: Uint8Array[], hashes: string[]): Promise<void> {
    await this.persist(author, await this.applyToChain(author, firstSeq, bytes, hashes));
  }

  /** Keeps an authentic entry conflicting with the chain as fork evidence in `segment`, and stores it. */
  async addFork(author: string, segment: number, bytes: Uint8Array): Promise<void> {
    const open = await this.segment(author, segment);
    const head = await this.head(author);
    const doc = open.doc;
    appendToSegment(doc, { forks: [bytes] });
    const write = this.store.prepare(author, segment, doc, open.chunks, encodeHead(head));
    this.#open.set(`${author}\n${segment}`, { segment, doc, chunks: write.chunks });
    await this.persist(author, write);
  }

  /** Applies a write to `author`'s chain; when it fails, forgets the cached state that is now ahead of storage. */
  async persist(author: string, write: PreparedWrite): Promise<void> {
    try {
      await this.store.write(write);
    } catch (err) {
      this.forget(author);
      throw err;
    }
  }

  // After a failed write the cached documents and head are ahead of storage; reload them from storage next time.
  forget(author: string): void {
    for (const key of this.#open.keys()) if (key.startsWith(`${author}\n`)) this.#open.delete(key);
    this.#heads.delete(author);
    this.#forgotten(author);
  }

  /** The stored hash of `author`'s entry `seq`, hex; undefined when not held. */
  async hashAt(author: string, seq: number): Promise<string | undefined> {
    const open = await this.segment(author, this.segmentOf(seq));
    const stored = segmentItem(open.doc, "hashes", (seq - 1) % this.segmentSize);
    return stored === undefined ? undefined : hex(stored);
  }

  /** A segment document as its writers see it: cached while open, else loaded (or created empty). */
  async segment(author: string, segment: number): Promise<OpenSegment> {
    const key = `${author}\n${segment}`;
    const cached = this.#open.get(key);
    if (cached !== undefined) return cached;
    const loaded = await this.store.load(author, segment);
    const open: OpenSegment = loaded === undefined ? { segment, doc: this.store.create(author, segment), chunks: 0 } : { segment, doc: loaded.doc, chunks: loaded.chunks };
    // Only open tails and recent fork targets are cached; everything else is reloaded on demand.
    if (this.#open.size >= 32) this.#open.clear();
    this.#open.set(key, open);
    return open;
  }

  /** The head of `author`'s chain, cached. */
  async head(author: string): Promise<Head> {
    const cached = this.#heads.get(author);
    if (cached !== undefined) return cached;
    const bytes = await this.store.head(author);
    const head = bytes === undefined ? { seq: 0, hash: null } : decodeHead(bytes);
    this.#heads.set(author, head);
    return head;
  }

  /** Drops the cached segment documents. */
  clear(): void {
    this.#open.clear();
  }
}

/** A head record as stored. */
export function encodeHead(head: Head): Uint8Array {
  return canonicalEncode({ seq: head.seq, hash: head.hash });
}

/** A stored head record; a malformed one is a TypeError. */
export function decodeHead(bytes: Uint8Array): Head {
  const v = canonicalDecode(bytes) as { seq?: unknown; hash?: unknown };
  if (!Number.isSafeInteger(v.seq) || !(v.hash === null || typeof v.hash === "string")) throw new TypeError("audit head record is malformed");
  return { seq: v.seq as number, hash: v.hash };
}
