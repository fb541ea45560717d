import type { Database } from "../../src/storage/level-database.js";
import type { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { docRootReader } from "../../src/storage/root-reader.js";
import type { Quarantine } from "./quarantine.js";
import type { ReplicaAuthority, WriterRule } from "../../protocols/sync/replica-authority.js";

/** Set once a home's replicas from before signed replication were sorted out. */
const DONE_KEY = "meta:replicas-signed";

/** Options of {@link quarantineUnsignedReplicas}. */
export interface LegacyReplicaOptions {
  store: LevelDocumentStore;
  db: Database;
  authority: ReplicaAuthority;
  rules: readonly WriterRule[];
  quarantine: Quarantine;
  self: string;
  /** Told of every document set aside. */
  onQuarantined?: (id: string, reason: string) => void;
}

/**
 * Once per home: documents another device writes, held from before replication
 * was signed, carry no writer's signature, so nothing vouches for what they
 * hold (any member could have edited them). They are moved to the quarantine;
 * their writers send them again, signed, at the next sync. Documents this node
 * writes, and those naming no writer (queued by the CLI with no node running),
 * stay. Returns how many were set aside.
 */
export async function quarantineUnsignedReplicas(options: LegacyReplicaOptions): Promise<number> {
  const { store, authority, rules, quarantine, self } = options;
  if (options.db.getSync(DONE_KEY) !== undefined) return 0;
  let n = 0;
  for (const rule of rules) {
    for await (const id of store.ids(rule.prefix)) {
      if (authority.held(id) !== undefined) continue;
      let writer: string | undefined;
      let reason: string;
      try {
        const doc = await store.get<unknown>(id);
        if (doc === undefined) continue;
        writer = rule.writerOf(id, docRootReader(doc));
        if (writer === undefined || writer === self) continue;
        reason = `held unsigned from before signed replication; written by ${writer}`;
      } catch (err) {
        reason = `cannot be read: ${(err as Error).message}`;
      }
      const bytes = await store.remove(id);
      if (bytes === undefined) continue;
      await quarantine.keep({ at: Date.now(), id, reason, ...(writer !== undefined && { writer }), bytes });
      options.onQuarantined?.(id, reason);
      n++;
    }
  }
  await store.write([{ type: "put", key: DONE_KEY, value: new Uint8Array(0) }], { now: true });
  return n;
}
