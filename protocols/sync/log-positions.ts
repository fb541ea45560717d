import type { LogPosition } from "../../src/storage/document-store.js";
import type { Database } from "../../src/storage/level-database.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";

/**
 * Per peer, the position of its change log this node last reconciled to:
 * every document the peer held up to there, this node holds too. Kept so that
 * a reconnect asks only for what changed since.
 */
export interface LogPositions {
  get(peer: string): LogPosition | undefined;
  set(peer: string, position: LogPosition): void;
}

const KEY = "sync-at:";

/** {@link LogPositions} in the node's database, written through its batcher. */
export function createLogPositions(db: Database, write: (ops: WriteOp[]) => Promise<void>, onError: (error: Error) => void): LogPositions {
  return {
    get(peer) {
      const bytes = db.getSync(KEY + peer);
      if (bytes === undefined) return undefined;
      const [epoch, seq] = Buffer.from(bytes).toString("utf8").split(" ");
      const n = Number(seq);
      // A damaged record is no position: the next reconnect compares everything.
      return epoch !== undefined && /^[0-9a-f]{1,64}$/.test(epoch) && Number.isSafeInteger(n) && n >= 0 ? { epoch, seq: n } : undefined;
    },
    set(peer, position) {
      write([{ type: "put", key: KEY + peer, value: Buffer.from(`${position.epoch} ${position.seq}`) }]).catch(onError);
    },
  };
}
