import { randomBytes } from "node:crypto";
import type { Database } from "./level-database.js";
import type { WriteBatcher, WriteOp } from "./write-batcher.js";

/**
 * The change log: each change of a document gets the next position, and the
 * document's older entry is deleted, so the log holds one entry per document.
 * Entries are kept by origin, `clog-by:<peer>\x01<position>` naming the
 * document (the peer empty for this node's own changes): a peer asking what
 * changed since its position is not sent what came from itself, and after it
 * sent this node many documents most of the log past its position is those;
 * read by origin, the answer skips them without reading them. `clog-of:<id>` is
 * the key of a document's entry, `clog-at` the last position written and
 * `clog-epoch` the log's identity. Its writes go in each batch that writes a
 * document's heads, so the log is exactly as durable as the documents.
 *
 * A log written before entries were kept by origin holds them as
 * `clog:<position>` (the id, then `\x01` and the peer it came from, if any);
 * `clog-by-from` is the position up to which such entries may remain, read whole.
 */
const LOG = "clog:";
const LOG_OF = "clog-of:";
const LOG_AT = "clog-at";
const LOG_EPOCH = "clog-epoch";
const BY = "clog-by:";
const BY_FROM = "clog-by-from";
/** Positions as fixed-width base 36, so keys sort as numbers do. */
const DIGITS = 11;
/** Separates an id, or an origin, from what follows it (control characters never occur in ids or peer ids). */
const SEP = "\u0001";
/** Sorts after {@link SEP}: the key past every entry of one origin. */
const PAST_SEP = "\u0002";

const seqText = (seq: number): string => seq.toString(36).padStart(DIGITS, "0");
const logKey = (seq: number): string => LOG + seqText(seq);
const byKey = (origin: string, seq: number): string => BY + origin + SEP + seqText(seq);
const readPosition = (bytes: Uint8Array | undefined): number => (bytes === undefined ? 0 : parseInt(Buffer.from(bytes).toString("utf8"), 36) || 0);

/** A document changed after a position, with the position of its last change. */
export interface LoggedChange {
  id: string;
  seq: number;
}

/** See {@link createChangeLog}. */
export interface ChangeLog {
  readonly epoch: string;
  /** The last durable position. */
  position(): number;
  /** The writes that log a change of `id` (from peer `from`, or this node's own), for the batch that writes its heads. */
  record(id: string, from: string | undefined): WriteOp[];
  /** The writes that take `id` out of the log, for the batch that removes it. */
  forget(id: string): WriteOp[];
  /**
   * Documents whose last change is after `after` and up to `upto`, under one
   * of `prefixes`, in log order, leaving out those whose last change came from
   * `asker`. Costs in proportion to the entries of other origins in that span
   * (and a seek per origin), not to the asker's own.
   */
  changedAfter(after: number, upto: number, prefixes: readonly string[], asker: string | undefined): Promise<LoggedChange[]>;
}

/**
 * The change log of the documents kept in `db`; writes it queues itself (the
 * epoch and where entries by origin begin, when new) go through `batcher`
 * ahead of any change it records.
 */
export function createChangeLog(db: Database, batcher: WriteBatcher): ChangeLog {
  let seq = readPosition(db.getSync(LOG_AT));
  const storedEpoch = db.getSync(LOG_EPOCH);
  const epoch = storedEpoch === undefined ? randomBytes(12).toString("hex") : Buffer.from(storedEpoch).toString("utf8");
  const storedFrom = db.getSync(BY_FROM);
  // A log written before entries were kept by origin: every entry from here on is (any later value would be as
  // right, an earlier one not), so losing this write to a crash costs only a longer read of the log later.
  const byOriginAfter = storedFrom === undefined ? seq : readPosition(storedFrom);
  const opening: WriteOp[] = [];
  if (storedEpoch === undefined) opening.push({ type: "put", key: LOG_EPOCH, value: Buffer.from(epoch) });
  if (storedFrom === undefined) opening.push({ type: "put", key: BY_FROM, value: Buffer.from(seqText(byOriginAfter)) });
  // Queued first, so it is written with (or before) the first change this log records.
  if (opening.length > 0) void batcher.write(opening).catch(() => undefined);

  const parse = (value: Uint8Array): { id: string; from: string } => {
    const [id = "", from = ""] = Buffer.from(value).toString("utf8").split(SEP);
    return { id, from };
  };

  /** Each origin with entries, found by seeking past the previous one. */
  async function origins(): Promise<string[]> {
    const out: string[] = [];
    const keys = db.keys({ gte: BY, lt: BY + "\uffff" });
    try {
      for (let key = await keys.next(); key !== undefined; key = await keys.next()) {
        const origin = key.slice(BY.length, key.indexOf(SEP, BY.length));
        out.push(origin);
        keys.seek(BY + origin + PAST_SEP);
      }
    } finally {
      await keys.close();
    }
    return out;
  }

  /** Entries in (after, upto] of a log written before entries were kept by origin. */
  async function scanLog(after: number, upto: number, keep: (id: string, from: string) => boolean): Promise<LoggedChange[]> {
    const out: LoggedChange[] = [];
    for await (const [key, value] of db.iterator({ gt: logKey(after), lte: logKey(upto) })) {
      const { id, from } = parse(value);
      if (keep(id, from)) out.push({ id, seq: parseInt(key.slice(LOG.length), 36) });
    }
    return out;
  }

  async function scanOrigin(origin: string, after: number, upto: number, keep: (id: string) => boolean): Promise<LoggedChange[]> {
    const out: LoggedChange[] = [];
    for await (const [key, value] of db.iterator({ gt: byKey(origin, after), lte: byKey(origin, upto) })) {
      const id = Buffer.from(value).toString("utf8");
      if (keep(id)) out.push({ id, seq: parseInt(key.slice(key.lastIndexOf(SEP) + 1), 36) });
    }
    return out;
  }

  return {
    epoch,
    position: () => readPosition(db.getSync(LOG_AT)),
    record(id, from) {
      const at = ++seq;
      const key = byKey(from ?? "", at);
      const ops: WriteOp[] = [
        { type: "put", key, value: Buffer.from(id) },
        { type: "put", key: LOG_OF + id, value: Buffer.from(key) },
        { type: "put", key: LOG_AT, value: Buffer.from(at.toString(36)) },
      ];
      // Writes of one id are serialised by the store, so the entry read here is the one its last batch wrote.
      const previous = db.getSync(LOG_OF + id);
      if (previous !== undefined) ops.push({ type: "del", key: Buffer.from(previous).toString("utf8") });
      return ops;
    },
    forget(id) {
      const previous = db.getSync(LOG_OF + id);
      return previous === undefined ? [] : [{ type: "del", key: Buffer.from(previous).toString("utf8") }, { type: "del", key: LOG_OF + id }];
    },
    async changedAfter(after, upto, prefixes, asker) {
      const wanted = (id: string): boolean => id !== "" && prefixes.some((p) => id.startsWith(p));
      const out = after < byOriginAfter ? await scanLog(after, Math.min(upto, byOriginAfter), (id, from) => from !== asker && wanted(id)) : [];
      const from = Math.max(after, byOriginAfter);
      if (from < upto) for (const origin of await origins()) if (origin !== asker) out.push(...(await scanOrigin(origin, from, upto, wanted)));
      return out.sort((a, b) => a.seq - b.seq);
    },
  };
}
