import type { Database } from "../../src/storage/level-database.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";
import type { RememberedNonce } from "./replay-guard.js";

/**
 * Where a task server keeps the nonces of the submissions it took, so that a
 * submission replayed after a restart is refused as it would have been before.
 */
export interface ReplayStore {
  /** Every nonce kept, each peer's oldest first. */
  load(): Promise<RememberedNonce[]>;
  /** Keep a nonce; resolves once it is durable. */
  remember(entry: RememberedNonce): Promise<void>;
  /** Drop nonces the guard no longer needs. */
  forget(entries: readonly RememberedNonce[]): Promise<void>;
}

/** Options of {@link createLevelReplayStore}. */
export interface LevelReplayStoreOptions {
  db: Database;
  /**
   * The node's group commit (`WriteBatcher.write`). A nonce written through it
   * before its task is handed to the engine is durable no later than the task's
   * first record: the engine's flush commits everything queued before it in its
   * own batch, and batches reach LevelDB in order. So a crash never leaves a
   * stored task whose submission could be taken again.
   */
  write: (ops: WriteOp[]) => Promise<void>;
}

const PREFIX = "rpl:";
const WIDTH = 15;
const EMPTY = new Uint8Array(0);

/** `rpl:<peer>:<issuedAt, zero-padded>:<nonce hex>`: a peer's nonces sort oldest first. */
function keyOf(entry: RememberedNonce): string {
  return `${PREFIX}${entry.peer}:${entry.issuedAt.toString().padStart(WIDTH, "0")}:${Buffer.from(entry.nonce).toString("hex")}`;
}

function parseKey(key: string): RememberedNonce | undefined {
  const m = /^rpl:([^:]{1,128}):(\d{15}):([0-9a-f]{0,512})$/.exec(key);
  return m === null ? undefined : { peer: m[1]!, issuedAt: Number(m[2]), nonce: Buffer.from(m[3]!, "hex") };
}

/** A {@link ReplayStore} in the node's LevelDB; keys it cannot read are dropped as it loads. */
export function createLevelReplayStore(options: LevelReplayStoreOptions): ReplayStore {
  const { db, write } = options;
  return {
    async load() {
      const entries: RememberedNonce[] = [];
      const unreadable: WriteOp[] = [];
      for await (const key of db.keys({ gte: PREFIX, lt: "rpl;" })) {
        const entry = parseKey(key);
        if (entry === undefined) unreadable.push({ type: "del", key });
        else entries.push(entry);
      }
      if (unreadable.length > 0) await write(unreadable);
      return entries;
    },
    remember: (entry) => write([{ type: "put", key: keyOf(entry), value: EMPTY }]),
    forget: async (entries) => {
      if (entries.length > 0) await write(entries.map((e) => ({ type: "del", key: keyOf(e) })));
    },
  };
}
