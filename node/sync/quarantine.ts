import { randomBytes } from "node:crypto";
import { decode, encode } from "cborg";
import type { Database } from "../../src/storage/level-database.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";

/** Content refused or set aside, kept as evidence and never read as state. */
export interface QuarantineEntry {
  /** When it was set aside, ms since epoch. */
  at: number;
  /** The document it claimed to be. */
  id: string;
  reason: string;
  /** The peer that sent it; absent for content found in local storage. */
  peer?: string;
  /** The device that signed it, as it claimed. */
  writer?: string;
  /** The bytes as they came. */
  bytes: Uint8Array;
}

/** Options of {@link createQuarantine}. */
export interface QuarantineOptions {
  db: Database;
  /** Writes through the database's group commit. */
  write: (ops: WriteOp[]) => Promise<void>;
  /** Entries kept at most; past it a flood of forgeries is counted in the audit log but its bytes are not kept. Default 1,000. */
  maxEntries?: number;
  /** Bytes of one entry kept at most; the rest is cut. Default 1 MiB. */
  maxEntryBytes?: number;
}

/** Evidence of refused replicated content, in the node's database. */
export interface Quarantine {
  /** Keep `entry`; resolves false when the quarantine is full and it was not kept. */
  keep(entry: QuarantineEntry): Promise<boolean>;
  /** Every entry kept, oldest first. */
  list(): Promise<QuarantineEntry[]>;
}

const PREFIX = "quarantine:";

/** See {@link Quarantine}. */
export function createQuarantine(options: QuarantineOptions): Quarantine {
  const max = options.maxEntries ?? 1000;
  const maxBytes = options.maxEntryBytes ?? 1024 * 1024;
  let count: number | undefined;
  const counted = async (): Promise<number> => {
    if (count !== undefined) return count;
    let n = 0;
    for await (const _ of options.db.keys({ gte: PREFIX, lt: PREFIX + "\uffff" })) n++;
    return (count ??= n);
  };
  return {
    async keep(entry) {
      if ((await counted()) >= max) return false;
      count!++;
      const key = `${PREFIX}${entry.at.toString().padStart(15, "0")}:${randomBytes(4).toString("hex")}`;
      const value = encode({ ...entry, bytes: entry.bytes.subarray(0, maxBytes) });
      await options.write([{ type: "put", key, value }]);
      return true;
    },
    async list() {
      const out: QuarantineEntry[] = [];
      for await (const value of options.db.values({ gte: PREFIX, lt: PREFIX + "\uffff" })) out.push(decode(value) as QuarantineEntry);
      return out;
    },
  };
}
