import type * as A from "@automerge/automerge";
import { decodeAuditEntry, type AuditEntry, type AuditResult } from "./entry.js";
import { decodeHead, type Chains, type Head } from "./chains.js";
import { segmentItems, type SegmentDoc } from "./segments.js";
import { verifyChain, type AuditProblem, type ForkEvidence } from "./verify.js";

/** Filter of {@link AuditReader.query}; every given field must match. */
export interface AuditQuery {
  userId?: string;
  action?: string;
  result?: AuditResult;
  /** Inclusive. */
  startDate?: Date;
  /** Inclusive. */
  endDate?: Date;
  /** Only this author's log; all logs when absent. */
  author?: string;
  /** At most this many, oldest first. */
  limit?: number;
}

/** Result of {@link AuditReader.verify}. */
export interface AuditVerifyReport {
  ok: boolean;
  /** Chains checked. */
  authors: number;
  /** Entries whose hash, signature and link were checked. */
  entries: number;
  /** The first bad entry of each bad chain, by author. */
  problems: AuditProblem[];
  /** Every pair of conflicting authentic entries found. */
  forks: ForkEvidence[];
}

/** What an {@link AuditReader} works with. */
export interface AuditReaderContext {
  chains: Chains;
  /** An author's public key; undefined when unknown. */
  keyOf: (author: string) => Uint8Array | undefined;
  /** Resolves once pending appends are in the segments, which is where reads look. */
  settled: () => Promise<void>;
}

/** The read path of the audit log: queries, verification and replication reads of every stored chain. */
export class AuditReader {
  readonly #ctx: AuditReaderContext;

  constructor(ctx: AuditReaderContext) {
    this.#ctx = ctx;
  }

  /**
   * Entries matching `filter` across all stored logs, ordered by time (then
   * author and sequence, so the order is stable); with a limit, the newest
   * `limit` of them, still oldest first, as `tail` and `git log -n` do.
   */
  async query(filter: AuditQuery = {}): Promise<AuditEntry[]> {
    await this.#ctx.settled();
    const store = this.#ctx.chains.store;
    const start = filter.startDate?.getTime() ?? -Infinity;
    const end = filter.endDate?.getTime() ?? Infinity;
    const limit = filter.limit ?? Infinity;
    const out: AuditEntry[] = [];
    const authors = filter.author === undefined ? await store.authors() : [filter.author];
    for (const author of authors) {
      for (const segment of await store.segments(author)) {
        const loaded = await store.load(author, segment);
        if (loaded === undefined) continue;
        for (const bytes of loaded.doc.entries) {
          let entry: AuditEntry;
          try {
            entry = decodeAuditEntry(bytes).entry;
          } catch {
            continue;
          }
          const b = entry.body;
          if (filter.userId !== undefined && b.userId !== filter.userId) continue;
          if (filter.action !== undefined && b.action !== filter.action) continue;
          if (filter.result !== undefined && b.result !== filter.result) continue;
          if (entry.time < start || entry.time > end) continue;
          out.push(entry);
        }
      }
    }
    out.sort((a, b) => a.time - b.time || (a.author < b.author ? -1 : a.author > b.author ? 1 : a.seq - b.seq));
    return limit < out.length ? out.slice(out.length - limit) : out;
  }

  /**
   * Checks every chain in storage (this node's and replicated ones) from the stored
   * bytes, not from memory, and names the first bad entry of each.
   */
  async verify(): Promise<AuditVerifyReport> {
    await this.#ctx.settled();
    const store = this.#ctx.chains.store;
    const report: AuditVerifyReport = { ok: true, authors: 0, entries: 0, problems: [], forks: [] };
    for (const author of await store.authors()) {
      report.authors++;
      const headBytes = await store.head(author);
      const head = headBytes === undefined ? undefined : decodeHead(headBytes);
      const result = await verifyChain({
        author,
        key: this.#ctx.keyOf(author),
        segments: this.#segmentsOf(author),
        recordedHead: head?.seq,
      });
      report.entries += result.entries;
      if (result.problem !== undefined) report.problems.push(result.problem);
      report.forks.push(...result.forks);
    }
    report.ok = report.problems.length === 0;
    return report;
  }

  /**
   * Stored bytes of `author`'s entries with seq > `afterSeq`, in order, for
   * replication; at most `limit` of them, reading only the segments they are in.
   */
  async exportEntries(author: string, afterSeq = 0, limit = Infinity): Promise<Uint8Array[]> {
    await this.#ctx.settled();
    const chains = this.#ctx.chains;
    const out: Uint8Array[] = [];
    const first = Math.floor(afterSeq / chains.segmentSize);
    for (const segment of await chains.store.segments(author)) {
      if (segment < first) continue;
      if (out.length >= limit) break;
      // The open tail is the segment members pull again and again as it grows: read it from memory, not storage.
      const { doc } = await chains.segment(author, segment);
      for (const bytes of segmentItems(doc, "entries", Math.max(0, afterSeq - segment * chains.segmentSize))) {
        if (out.length >= limit) break;
        out.push(bytes);
      }
    }
    return out;
  }

  /** Last seq and hash of every stored chain, for replication. */
  async heads(): Promise<Map<string, Head>> {
    const chains = this.#ctx.chains;
    await chains.writes;
    const heads = new Map<string, Head>();
    for (const author of await chains.store.authors()) heads.set(author, await chains.head(author));
    return heads;
  }

  async *#segmentsOf(author: string): AsyncIterable<{ segment: number; doc: A.Doc<SegmentDoc> }> {
    const store = this.#ctx.chains.store;
    for (const segment of await store.segments(author)) {
      const loaded = await store.load(author, segment);
      if (loaded !== undefined) yield { segment, doc: loaded.doc };
    }
  }
}
