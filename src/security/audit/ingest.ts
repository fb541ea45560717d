import { verifySignature } from "../keys.js";
import { decodeAuditEntry, type DecodedAuditEntry } from "./entry.js";
import type { Chains } from "./chains.js";
import { segmentItems } from "./segments.js";

/** Result of {@link ingestEntries}. */
export interface IngestReport {
  /** Entries added to their author's chain. */
  appended: number;
  /** Entries already held. */
  duplicates: number;
  /** Authentic entries conflicting with the held chain, kept as fork evidence. */
  forks: number;
  /** Entries refused (malformed, forged), with why. */
  rejected: Array<{ reason: string }>;
  /** Per author, the first seq still missing when entries arrived past a gap (they were not stored). */
  gaps: Array<{ author: string; missingFrom: number }>;
}

/** What {@link ingestEntries} works with. */
export interface IngestContext {
  chains: Chains;
  /** An author's public key; undefined when unknown. */
  keyOf: (author: string) => Uint8Array | undefined;
  /** Folds this node's journal into its segments; called exclusively, before any chain is touched. */
  foldOwn: () => Promise<void>;
}

/**
 * Stores entries replicated from other nodes: the ingest path. Entries extending
 * a chain are appended in order, repeats are skipped, authentic conflicting
 * entries are kept as fork evidence, forged ones refused.
 *
 * A run of entries that extends a chain is authenticated by the signature of its
 * newest entry: that entry's signed bytes hold the hash of the one before it
 * (signature included), and so on back to the head this log already holds, so
 * one signature check vouches for the whole run. Only when that check fails is
 * each entry checked on its own, keeping the authentic prefix. A fork candidate
 * is always checked on its own. Verification still checks every signature.
 */
export async function ingestEntries(ctx: IngestContext, entries: Iterable<Uint8Array>): Promise<IngestReport> {
  const report: IngestReport = { appended: 0, duplicates: 0, forks: 0, rejected: [], gaps: [] };
  const byAuthor = new Map<string, DecodedAuditEntry[]>();
  for (const bytes of entries) {
    let decoded: DecodedAuditEntry;
    try {
      decoded = decodeAuditEntry(bytes);
    } catch (err) {
      report.rejected.push({ reason: `malformed: ${(err as Error).message}` });
      continue;
    }
    const key = ctx.keyOf(decoded.entry.author);
    if (key === undefined) {
      report.rejected.push({ reason: `forged: unknown author key ${decoded.entry.author}` });
      continue;
    }
    let list = byAuthor.get(decoded.entry.author);
    if (list === undefined) byAuthor.set(decoded.entry.author, (list = []));
    list.push(decoded);
  }
  await ctx.chains.exclusive(async () => {
    // Our own entries relayed back are compared with our segments: fold the journal into them first.
    await ctx.foldOwn();
    for (const [author, list] of [...byAuthor].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      list.sort((a, b) => a.entry.seq - b.entry.seq);
      await ingestChain(ctx.chains, author, ctx.keyOf(author) as Uint8Array, list, report);
    }
  });
  return report;
}

async function ingestChain(chains: Chains, author: string, key: Uint8Array, list: DecodedAuditEntry[], report: IngestReport): Promise<void> {
  const authentic = (d: DecodedAuditEntry): boolean => verifySignature(key, d.signed, d.sig);
  const reject = (d: DecodedAuditEntry): void => void report.rejected.push({ reason: `forged: bad signature on ${author}#${d.entry.seq}` });
  let run: DecodedAuditEntry[] = [];
  /** Appends the run; false when a forged entry in it cut the chain short of entries after it. */
  const flush = async (): Promise<boolean> => {
    let good = run;
    run = [];
    let whole = true;
    // The newest entry vouches for the run through the hash chain (see ingestEntries); without it, each answers for itself.
    if (good.length > 0 && !authentic(good.at(-1) as DecodedAuditEntry)) {
      const bad = good.findIndex((d) => !authentic(d));
      reject(good[bad] as DecodedAuditEntry);
      if (bad < good.length - 1) {
        report.gaps.push({ author, missingFrom: (good[bad] as DecodedAuditEntry).entry.seq });
        whole = false;
      }
      good = good.slice(0, bad);
    }
    if (good.length > 0) {
      await chains.appendToChain(author, (good[0] as DecodedAuditEntry).entry.seq, good.map((d) => d.bytes), good.map((d) => d.entry.hash));
      report.appended += good.length;
    }
    return whole;
  };
  for (const decoded of list) {
    const { entry } = decoded;
    const last = run.at(-1)?.entry;
    let tip = last === undefined ? await chains.head(author) : { seq: last.seq, hash: last.hash };
    const extendsTip = (): boolean => entry.seq === tip.seq + 1 && entry.prev === tip.hash;
    if (!extendsTip() && run.length > 0) {
      if (!(await flush())) return;
      // A forged newest entry leaves the chain one shorter than the run was.
      tip = await chains.head(author);
    }
    if (extendsTip()) {
      run.push(decoded);
      if ((entry.seq % chains.segmentSize === 0 || run.length >= chains.maxBatch) && !(await flush())) return;
      continue;
    }
    if (entry.seq > tip.seq + 1) {
      report.gaps.push({ author, missingFrom: tip.seq + 1 });
      return;
    }
    const held = entry.seq <= tip.seq ? await chains.hashAt(author, entry.seq) : undefined;
    if (held === entry.hash) {
      report.duplicates++;
      continue;
    }
    if (!authentic(decoded)) {
      reject(decoded);
      continue;
    }
    const segment = chains.segmentOf(entry.seq);
    const open = await chains.segment(author, segment);
    if (segmentItems(open.doc, "forks").some((f) => Buffer.compare(f, decoded.bytes) === 0)) {
      report.duplicates++;
      continue;
    }
    await chains.addFork(author, segment, decoded.bytes);
    report.forks++;
  }
  await flush();
}
