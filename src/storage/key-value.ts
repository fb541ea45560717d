import type { AbstractLevel } from "abstract-level";

/** One write of a {@link KeyValueStore} batch. */
export type KeyValueOp = { type: "put"; key: string; value: Uint8Array } | { type: "del"; key: string };

/** A key range, bounds compared as UTF-8 bytes (LevelDB's order). */
export interface KeyRange {
  gte?: string;
  lt?: string;
  limit?: number;
}

/**
 * The ordered key-value storage the chunked documents are kept in: what a
 * LevelDB database (or sublevel) offers, narrowed to what its callers use.
 */
export interface KeyValueStore {
  /** The value at `key`, or undefined. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Entries in key order within `range`. */
  entries(range: KeyRange): AsyncIterable<[string, Uint8Array]>;
  /** Keys in order within `range`. */
  keys(range: KeyRange): AsyncIterable<string>;
  /** Applies `ops` atomically. */
  batch(ops: KeyValueOp[]): Promise<void>;
}

/** A LevelDB database or sublevel with string keys and byte values, as a {@link KeyValueStore}. */
// `any`: a Level and its sublevels differ in their first type parameter, which nothing here uses.
export function levelKeyValues(db: AbstractLevel<any, string, Uint8Array>): KeyValueStore {
  // The level iterators are handed out as they are: wrapping them in generators costs a promise hop per entry.
  return {
    get: (key) => db.get(key),
    entries: (range) => db.iterator(range),
    keys: (range) => db.keys(range),
    batch: (ops) => db.batch(ops),
  };
}

/** Compares keys the way LevelDB does: by their UTF-8 bytes. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** An in-memory {@link KeyValueStore}, for tests: nothing survives the process. */
export function memoryKeyValues(): KeyValueStore {
  const values = new Map<string, Uint8Array>();
  function* inRange(range: KeyRange): Generator<[string, Uint8Array]> {
    const keys = [...values.keys()]
      .filter((k) => (range.gte === undefined || compareKeys(k, range.gte) >= 0) && (range.lt === undefined || compareKeys(k, range.lt) < 0))
      .sort(compareKeys);
    for (const key of keys.slice(0, range.limit ?? keys.length)) yield [key, values.get(key)!];
  }
  return {
    get: async (key) => values.get(key),
    async *entries(range) {
      yield* inRange(range);
    },
    async *keys(range) {
      for (const [key] of inRange(range)) yield key;
    },
    async batch(ops) {
      for (const op of ops) {
        if (op.type === "put") values.set(op.key, op.value.slice());
        else values.delete(op.key);
      }
    },
  };
}
