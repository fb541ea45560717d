import * as A from "@automerge/automerge";
import { CoderClawError } from "../contract/errors.js";
import type { KeyValueOp, KeyValueStore } from "./key-value.js";

/**
 * Where a document's records lie: `<keyPrefix><id><separator><snapshot>` holds
 * its compacted snapshot and `<keyPrefix><id><separator><chunk><n>` (n padded to
 * `chunkDigits`) the incremental chunks written after it. Each caller keeps the
 * layout its homes were written with. The snapshot suffix must sort after the
 * chunk suffix, and ids must not contain the separator followed by either.
 */
export interface ChunkLayout {
  keyPrefix: string;
  separator: string;
  snapshot: string;
  chunk: string;
  chunkDigits: number;
}

/** A document's records as stored: their keys, and its bytes in history order (the snapshot, then the chunks after it). */
export interface StoredDocument {
  keys: string[];
  parts: Uint8Array[];
  /** Incremental chunks after the snapshot. */
  chunks: number;
}

/** What is stored of a document, as a writer keeps track of it. */
export interface StoredState {
  /** Incremental chunks after the snapshot. */
  chunks: number;
  /** The heads stored last; without them, Automerge's own record of what it last saved is the base of the next chunk. */
  heads?: A.Heads;
}

/** The writes that store a document's new changes; see {@link ChunkedDocuments.save}. */
export interface ChunkedWrite {
  ops: KeyValueOp[];
  /** The document's chunk count once the writes are applied. */
  chunks: number;
  /** The bytes written: the whole document when compacted or new, else the new chunk. */
  changes: Uint8Array;
}

/** A stored document whose bytes Automerge cannot load. */
export class CorruptDocumentError extends CoderClawError {
  constructor(
    readonly id: string,
    cause: unknown,
  ) {
    super("STORAGE_CORRUPT", `document ${id} cannot be decoded: ${(cause as Error).message}`, { cause });
  }
}

/**
 * A document's snapshot without Automerge's own deflate: LevelDB compresses
 * blocks already, and deflating was half the cost of saving a small document.
 */
function snapshot(doc: A.Doc<unknown>): Uint8Array {
  return A.getBackend(doc).saveNoCompress();
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** A stored document's bytes, one Automerge document's worth; empty when nothing is stored. */
export function storedBytes(stored: StoredDocument): Uint8Array {
  return stored.parts.length === 0 ? new Uint8Array(0) : concatBytes(stored.parts);
}

/**
 * Automerge documents kept as a snapshot plus incremental chunks in a
 * {@link KeyValueStore}, compacted into a new snapshot every `compactAfterChunks`
 * chunks: a change costs a write of its own size, and a load reads at most that
 * many chunks beyond the snapshot.
 *
 * Writes are returned as operations rather than applied, so that a caller
 * commits them in one atomic batch with the records that must change with the
 * document (heads, indexes, signatures) through its own group commit.
 */
export class ChunkedDocuments {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly layout: ChunkLayout,
    private readonly compactAfterChunks: number,
  ) {}

  /** The key of a document's snapshot. */
  snapshotKey(id: string): string {
    const l = this.layout;
    return `${l.keyPrefix}${id}${l.separator}${l.snapshot}`;
  }

  /** The key of a document's `n`th chunk after its snapshot. */
  chunkKey(id: string, n: number): string {
    const l = this.layout;
    return `${l.keyPrefix}${id}${l.separator}${l.chunk}${n.toString().padStart(l.chunkDigits, "0")}`;
  }

  /** A stored document's records; no keys when none are stored. */
  async read(id: string): Promise<StoredDocument> {
    const start = `${this.layout.keyPrefix}${id}${this.layout.separator}`;
    const snapshotKey = this.snapshotKey(id);
    const keys: string[] = [];
    const parts: Uint8Array[] = [];
    let snap: Uint8Array | undefined;
    for await (const [key, value] of this.kv.entries({ gte: start, lt: `${start}\uffff` })) {
      keys.push(key);
      if (key === snapshotKey) snap = value;
      else parts.push(value);
    }
    const chunks = parts.length;
    // The snapshot sorts after its chunks in key order but comes first in history.
    if (snap) parts.unshift(snap);
    return { keys, parts, chunks };
  }

  /**
   * Loads a stored document; undefined when none is stored. Bytes that do not
   * load are a {@link CorruptDocumentError}, never an empty document.
   */
  async load<T>(id: string, options: { actor?: string } = {}): Promise<{ doc: A.Doc<T>; chunks: number } | undefined> {
    const { parts, chunks } = await this.read(id);
    if (parts.length === 0) return undefined;
    try {
      const bytes = concatBytes(parts);
      return { doc: options.actor === undefined ? A.load<T>(bytes) : A.load<T>(bytes, { actor: options.actor }), chunks };
    } catch (err) {
      throw new CorruptDocumentError(id, err);
    }
  }

  /**
   * The writes that store `doc` given what is stored of it (undefined: nothing
   * yet): a snapshot for a new document or once the chunks reach the compaction
   * threshold (deleting them), else one more chunk of the changes since. Computed
   * synchronously, so the next change can be made while these are written; the
   * writes of one document must then be applied in the order they were computed.
   */
  save(id: string, doc: A.Doc<unknown>, stored: StoredState | undefined): ChunkedWrite {
    if (stored === undefined) {
      const changes = snapshot(doc);
      return { ops: [{ type: "put", key: this.snapshotKey(id), value: changes }], chunks: 0, changes };
    }
    if (stored.chunks + 1 >= this.compactAfterChunks) {
      const changes = snapshot(doc);
      const ops: KeyValueOp[] = [{ type: "put", key: this.snapshotKey(id), value: changes }];
      for (let n = 0; n < stored.chunks; n++) ops.push({ type: "del", key: this.chunkKey(id, n) });
      return { ops, chunks: 0, changes };
    }
    const changes = stored.heads === undefined ? A.saveIncremental(doc) : A.saveSince(doc, stored.heads);
    return { ops: [{ type: "put", key: this.chunkKey(id, stored.chunks), value: changes }], chunks: stored.chunks + 1, changes };
  }

  /** The write that stores a new document given as saved bytes, as its snapshot. */
  insert(id: string, bytes: Uint8Array): KeyValueOp {
    return { type: "put", key: this.snapshotKey(id), value: bytes };
  }

  /** The writes that delete a stored document's records. */
  remove(stored: StoredDocument): KeyValueOp[] {
    return stored.keys.map((key) => ({ type: "del", key }));
  }

  /**
   * Ids of the stored documents whose id starts with `prefix`, in key order. The
   * keys under the layout's prefix and `prefix` must all be documents' records.
   */
  async *ids(prefix = ""): AsyncIterable<string> {
    const l = this.layout;
    const start = l.keyPrefix + prefix;
    const snapshotSuffix = l.separator + l.snapshot;
    const chunkSuffixLength = l.separator.length + l.chunk.length + l.chunkDigits;
    let last: string | undefined;
    for await (const key of this.kv.keys({ gte: start, lt: `${start}\uffff` })) {
      const end = key.endsWith(snapshotSuffix) ? key.length - snapshotSuffix.length : key.length - chunkSuffixLength;
      const id = key.slice(l.keyPrefix.length, end);
      if (id !== last) yield id;
      last = id;
    }
  }
}
