import { deviceKeyResolver, type KeyResolver, type Signer } from "../keys.js";
import { OwnChain } from "./append.js";
import { Chains, type Head } from "./chains.js";
import type { AuditBody, AuditEntry } from "./entry.js";
import { ingestEntries, type IngestReport } from "./ingest.js";
import { AuditReader, type AuditQuery, type AuditVerifyReport } from "./read.js";
import { SegmentStore, type AuditDatabase, type AuditWrite } from "./segments.js";

export type { IngestReport } from "./ingest.js";
export type { AuditQuery, AuditVerifyReport } from "./read.js";

/** Dependencies of an {@link AuditLog}. */
export interface AuditLogOptions {
  /** The node's database (a `Level` or a sublevel); the log keeps to its own `audit` sublevel. */
  db: AuditDatabase;
  /** This node's key: it signs every entry of this node's log. */
  signer: Signer;
  /** Public keys of authors; defaults to reading them out of device ids. */
  resolveKey?: KeyResolver;
  /** Entries per segment document. */
  segmentSize?: number;
  /** Most entries committed in one Automerge change. */
  maxBatch?: number;
  /** Journaled entries are folded into their segment documents this long after the first of them, ms. Default 50. */
  foldAfterMs?: number;
  /**
   * The database's group commit, to write through instead of a batch of the
   * log's own: it must apply each call's operations (on the log's sublevel of
   * `db`, named by each one's `sublevel`) atomically and in call order. A node
   * passes the one its task engine uses, so an audited submission's entry and
   * the task it admits share a write.
   */
  write?: AuditWrite;
  now?: () => number;
}

/**
 * A node's tamper-evident audit log, plus the logs replicated from other nodes.
 *
 * Three paths share the stored chains ({@link Chains}): appending to this node's
 * own chain ({@link OwnChain}: group commit through a journal folded into the
 * segments later), ingesting other nodes' chains ({@link ingestEntries}:
 * verification, gaps, forks kept as evidence) and reading ({@link AuditReader}:
 * queries, verification, replication reads).
 */
export class AuditLog {
  readonly #signer: Signer;
  readonly #resolveKey: KeyResolver;
  readonly #chains: Chains;
  readonly #own: OwnChain;
  readonly #reader: AuditReader;
  readonly #growth = new Set<() => void>();

  constructor(options: AuditLogOptions) {
    this.#signer = options.signer;
    this.#resolveKey = options.resolveKey ?? deviceKeyResolver;
    const segmentSize = options.segmentSize ?? 1000;
    const sizes = { segmentSize, maxBatch: Math.min(options.maxBatch ?? 500, segmentSize) };
    this.#chains = new Chains(new SegmentStore(options.db, options.write), sizes, (author) => {
      if (author === this.#signer.peerId) this.#own.forgetJournal();
    });
    this.#own = new OwnChain(this.#chains, this.#signer, { foldAfterMs: options.foldAfterMs ?? 50, now: options.now ?? Date.now });
    this.#reader = new AuditReader({ chains: this.#chains, keyOf: (author) => this.#keyOf(author), settled: () => this.#own.settled() });
  }

  /** This node's author id. */
  get author(): string {
    return this.#signer.peerId;
  }

  /** Appends an entry to this node's log; resolves when it is durable. */
  append(body: AuditBody): Promise<AuditEntry> {
    return this.#own.append(body).then((entry) => {
      this.#grew();
      return entry;
    });
  }

  /** Call `listener` whenever a chain grew here (an append became durable, or ingested entries were stored); returns its removal. */
  onGrow(listener: () => void): () => void {
    this.#growth.add(listener);
    return () => void this.#growth.delete(listener);
  }

  /** Entries matching `filter` across all stored logs, oldest first per author. */
  query(filter: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.#reader.query(filter);
  }

  /**
   * Checks every chain in storage (this node's and replicated ones) from the stored
   * bytes, not from memory, and names the first bad entry of each.
   */
  verify(): Promise<AuditVerifyReport> {
    return this.#reader.verify();
  }

  /**
   * Stores entries replicated from other nodes: entries extending a chain are
   * appended in order, repeats are skipped, authentic conflicting entries are kept
   * as fork evidence, forged ones refused (see {@link ingestEntries}).
   */
  ingest(entries: Iterable<Uint8Array>): Promise<IngestReport> {
    return ingestEntries({ chains: this.#chains, keyOf: (author) => this.#keyOf(author), foldOwn: () => this.#own.fold() }, entries).then((report) => {
      if (report.appended > 0) this.#grew();
      return report;
    });
  }

  /**
   * Stored bytes of `author`'s entries with seq > `afterSeq`, in order, for
   * replication; at most `limit` of them, reading only the segments they are in.
   */
  exportEntries(author: string, afterSeq = 0, limit = Infinity): Promise<Uint8Array[]> {
    return this.#reader.exportEntries(author, afterSeq, limit);
  }

  /** Last seq and hash of every stored chain, for replication. */
  heads(): Promise<Map<string, Head>> {
    return this.#reader.heads();
  }

  /** Waits for pending appends and refuses new ones. Idempotent; does not close the database, which the caller owns. */
  async close(): Promise<void> {
    await this.#own.close();
    this.#chains.clear();
  }

  #grew(): void {
    for (const listener of this.#growth) listener();
  }

  #keyOf(author: string): Uint8Array | undefined {
    return author === this.#signer.peerId ? this.#signer.publicKey : this.#resolveKey(author);
  }
}
