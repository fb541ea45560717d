import type * as A from "@automerge/automerge";
import { canonicalDecode, canonicalEncode } from "../canonical.js";
import { deviceKeyResolver, verifySignature, type KeyResolver, type Signer } from "../keys.js";
import { decodeAuditEntry, signAuditEntry, type AuditBody, type AuditEntry, type AuditResult, type DecodedAuditEntry } from "./entry.js";
import { SegmentStore, appendToSegment, hex, segmentItem, segmentItems, type AuditDatabase, type AuditWrite, type JournaledEntry, type PreparedWrite, type SegmentDoc } from "./segments.js";
import { verifyChain, type AuditProblem, type ForkEvidence } from "./verify.js";

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

/** Filter of {@link AuditLog.query}; every given field must match. */
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

/** Result of {@link AuditLog.verify}. */
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

/** Result of {@link AuditLog.ingest}. */
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

interface Head {
  seq: number;
  hash: string | null;
}

interface OpenSegment {
  segment: number;
  doc: A.Doc<SegmentDoc>;
  chunks: number;
}

interface Pending {
  body: AuditBody;
  resolve: (entry: AuditEntry) => void;
  reject: (err: unknown) => void;
}

/**
 * A node's tamper-evident audit log, plus the logs replicated from other nodes.
 *
 * Appends use group commit: entries waiting while a batch is being written are
 * signed and chained together into the next LevelDB batch, and each `append`
 * resolves once the batch holding it is durable. That batch is a journal of the
 * signed entries: folding them into the Automerge segment documents costs more
 * than the signatures, so it happens a little later, many entries per change,
 * and before anything reads the segments (or at the next open, after a crash).
 */
export class AuditLog {
  readonly #store: SegmentStore;
  readonly #signer: Signer;
  readonly #resolveKey: KeyResolver;
  readonly #segmentSize: number;
  readonly #maxBatch: number;
  readonly #now: () => number;
  readonly #open = new Map<string, OpenSegment>();
  readonly #heads = new Map<string, Head>();
  #pending: Pending[] = [];
  #draining = false;
  #writes: Promise<unknown> = Promise.resolve();
  #closed = false;
  #foldTimer: NodeJS.Timeout | undefined;
  readonly #foldAfterMs: number;
  /**
   * This node's journaled entries not folded yet, oldest first; undefined until
   * the first fold reads what a previous run left. Only this log writes the
   * journal, so afterwards memory is exact, and a fold need not iterate a key
   * range strewn with the tombstones of every entry folded before.
   */
  #journaled: JournaledEntry[] | undefined;

  constructor(options: AuditLogOptions) {
    this.#store = new SegmentStore(options.db, options.write);
    this.#signer = options.signer;
    this.#resolveKey = options.resolveKey ?? deviceKeyResolver;
    this.#segmentSize = options.segmentSize ?? 1000;
    this.#maxBatch = Math.min(options.maxBatch ?? 500, this.#segmentSize);
    this.#now = options.now ?? Date.now;
    this.#foldAfterMs = options.foldAfterMs ?? 50;
  }

  /** This node's author id. */
  get author(): string {
    return this.#signer.peerId;
  }

  /** Appends an entry to this node's log; resolves when it is durable. */
  append(body: AuditBody): Promise<AuditEntry> {
    if (this.#closed) return Promise.reject(new Error("audit log is closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ body, resolve, reject });
      if (!this.#draining) {
        this.#draining = true;
        // Deferred so that appends issued in the same tick share the first batch.
        queueMicrotask(() => void this.#exclusive(() => this.#drain()));
      }
    });
  }

  /** Entries matching `filter` across all stored logs, oldest first per author. */
  async query(filter: AuditQuery = {}): Promise<AuditEntry[]> {
    await this.#settled();
    const start = filter.startDate?.getTime() ?? -Infinity;
    const end = filter.endDate?.getTime() ?? Infinity;
    const limit = filter.limit ?? Infinity;
    const out: AuditEntry[] = [];
    const authors = filter.author === undefined ? await this.#store.authors() : [filter.author];
    for (const author of authors) {
      for (const segment of await this.#store.segments(author)) {
        const loaded = await this.#store.load(author, segment);
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
          if (out.length >= limit) return out;
        }
      }
    }
    return out;
  }

  /**
   * Checks every chain in storage (this node's and replicated ones) from the stored
   * bytes, not from memory, and names the first bad entry of each.
   */
  async verify(): Promise<AuditVerifyReport> {
    await this.#settled();
    const report: AuditVerifyReport = { ok: true, authors: 0, entries: 0, problems: [], forks: [] };
    for (const author of await this.#store.authors()) {
      report.authors++;
      const headBytes = await this.#store.head(author);
      const head = headBytes === undefined ? undefined : decodeHead(headBytes);
      const result = await verifyChain({
        author,
        key: this.#keyOf(author),
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
   * Stores entries replicated from other nodes. Entries extending a chain are
   * appended in order, repeats are skipped, authentic conflicting entries are kept
   * as fork evidence, forged ones refused.
   *
   * A run of entries that extends a chain is authenticated by the signature of its
   * newest entry: that entry's signed bytes hold the hash of the one before it
   * (signature included), and so on back to the head this log already holds, so
   * one signature check vouches for the whole run. Only when that check fails is
   * each entry checked on its own, keeping the authentic prefix. A fork candidate
   * is always checked on its own. {@link verify} still checks every signature.
   */
  async ingest(entries: Iterable<Uint8Array>): Promise<IngestReport> {
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
      const key = this.#keyOf(decoded.entry.author);
      if (key === undefined) {
        report.rejected.push({ reason: `forged: unknown author key ${decoded.entry.author}` });
        continue;
      }
      let list = byAuthor.get(decoded.entry.author);
      if (list === undefined) byAuthor.set(decoded.entry.author, (list = []));
      list.push(decoded);
    }
    await this.#exclusive(async () => {
      // Our own entries relayed back are compared with our segments: fold the journal into them first.
      await this.#fold();
      for (const [author, list] of [...byAuthor].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        list.sort((a, b) => a.entry.seq - b.entry.seq);
        await this.#ingestChain(author, this.#keyOf(author) as Uint8Array, list, report);
      }
    });
    return report;
  }

  /**
   * Stored bytes of `author`'s entries with seq > `afterSeq`, in order, for
   * replication; at most `limit` of them, reading only the segments they are in.
   */
  async exportEntries(author: string, afterSeq = 0, limit = Infinity): Promise<Uint8Array[]> {
    await this.#settled();
    const out: Uint8Array[] = [];
    const first = Math.floor(afterSeq / this.#segmentSize);
    for (const segment of await this.#store.segments(author)) {
      if (segment < first) continue;
      if (out.length >= limit) break;
      // The open tail is the segment members pull again and again as it grows: read it from memory, not storage.
      const { doc } = await this.#segment(author, segment);
      for (const bytes of segmentItems(doc, "entries", Math.max(0, afterSeq - segment * this.#segmentSize))) {
        if (out.length >= limit) break;
        out.push(bytes);
      }
    }
    return out;
  }

  /** Last seq and hash of every stored chain, for replication. */
  async heads(): Promise<Map<string, Head>> {
    await this.#writes;
    const heads = new Map<string, Head>();
    for (const author of await this.#store.authors()) heads.set(author, await this.#head(author));
    return heads;
  }

  /** Waits for pending appends and refuses new ones. Idempotent; does not close the database, which the caller owns. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#foldTimer);
    // Folding now leaves compact storage; entries it cannot fold stay journaled for the next open.
    await this.#settled().catch(() => undefined);
    this.#open.clear();
  }

  #keyOf(author: string): Uint8Array | undefined {
    return author === this.#signer.peerId ? this.#signer.publicKey : this.#resolveKey(author);
  }

  // One writer at a time: own appends and ingested chains share segment documents and heads.
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#writes.then(fn, fn);
    this.#writes = run.catch(() => undefined);
    return run;
  }

  /**
   * Commits queued appends batch by batch. Signing and the Automerge change of the
   * next batch overlap the LevelDB write of the previous one; writes are applied in
   * order, and once one fails every later write is skipped and the cached state is
   * dropped, so storage never holds a batch whose predecessor is missing.
   */
  async #drain(): Promise<void> {
    const author = this.#signer.peerId;
    let previous: Promise<void> = Promise.resolve();
    let failure: { error: unknown } | undefined;
    const inFlight: Array<Promise<void>> = [];
    try {
      // Bounded by the appends queued; each pass stages a batch or settles a write. The
      // loop re-checks the queue after every write, since callers append again as soon
      // as their entry is settled, and `#draining` stays true until then.
      while (this.#pending.length > 0 || inFlight.length > 0) {
        if (this.#pending.length === 0) {
          await inFlight.shift();
          continue;
        }
        if (failure !== undefined) {
          await Promise.all(inFlight.splice(0));
          failure = undefined;
          previous = Promise.resolve();
        }
        let batch: Pending[] = [];
        try {
          const head = await this.#head(author);
          const room = this.#segmentSize - (head.seq % this.#segmentSize);
          batch = this.#pending.splice(0, Math.min(this.#maxBatch, room));
          const staged = this.#stage(author, head, batch.map((p) => p.body));
          const settled = batch;
          previous = previous
            .then(async () => {
              if (failure !== undefined) throw failure.error;
              await this.#store.write(staged.write);
            })
            .then(
              () => {
                this.#journaled?.push(...staged.journaled);
                settled.forEach((p, i) => p.resolve(staged.entries[i] as AuditEntry));
                this.#scheduleFold();
              },
              (err: unknown) => {
                failure ??= { error: err };
                this.#forget(author);
                for (const p of settled) p.reject(err);
              },
            );
          inFlight.push(previous);
          if (inFlight.length >= 2) await inFlight.shift();
        } catch (err) {
          if (batch.length === 0) batch = this.#pending.splice(0);
          this.#forget(author);
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  // Signs the next entries of this node's chain after `head` and moves the cached head; returns the journal write that makes them durable.
  #stage(author: string, head: Head, bodies: AuditBody[]): { entries: AuditEntry[]; journaled: JournaledEntry[]; write: PreparedWrite } {
    let hash = head.hash;
    const time = this.#now();
    const encoded = bodies.map((body, i) => {
      const e = signAuditEntry(this.#signer, head.seq + 1 + i, hash, time, body);
      hash = e.entry.hash;
      return e;
    });
    const next: Head = { seq: head.seq + bodies.length, hash };
    const journaled = encoded.map((e) => ({ seq: e.entry.seq, hash: Buffer.from(e.entry.hash, "hex"), bytes: e.bytes }));
    const write = this.#store.journalWrite(author, journaled, encodeHead(next));
    this.#heads.set(author, next);
    return { entries: encoded.map((e) => e.entry), journaled, write };
  }

  #scheduleFold(): void {
    if (this.#foldTimer !== undefined || this.#closed) return;
    this.#foldTimer = setTimeout(() => {
      this.#foldTimer = undefined;
      this.#exclusive(() => this.#fold()).catch(() => undefined);
    }, this.#foldAfterMs);
    this.#foldTimer.unref();
  }

  /** Pending appends written and the journal folded into the segments: what readers of the segments need. */
  async #settled(): Promise<void> {
    while (this.#draining) await this.#writes;
    await this.#exclusive(() => this.#fold());
  }

  /**
   * Moves this node's journaled entries into their segment documents, one
   * change and one atomic batch per segment (which also removes them from the
   * journal). Each batch writes the chain's newest head, never an older one.
   * Runs exclusively, so no append is half-way through meanwhile.
   */
  async #fold(): Promise<void> {
    const author = this.#signer.peerId;
    const journal = (this.#journaled ??= await this.#store.journal(author));
    if (journal.length === 0) return;
    const head = await this.#head(author);
    while (journal.length > 0) {
      const segment = Math.floor((journal[0]!.seq - 1) / this.#segmentSize);
      let j = 0;
      while (j < journal.length && Math.floor((journal[j]!.seq - 1) / this.#segmentSize) === segment) j++;
      const run = journal.slice(0, j);
      const write = await this.#applyToChain(author, run[0]!.seq, run.map((e) => e.bytes), run.map((e) => hex(e.hash)), head);
      write.ops.push(...this.#store.journalDeletes(author, run.map((e) => e.seq)));
      await this.#persist(author, write);
      journal.splice(0, j);
    }
  }

  // Appends consecutive entries starting at `firstSeq` (all within one segment) to the cached segment and head (or keeps `head`, when
  // the chain is already ahead of them); returns the write that persists them.
  async #applyToChain(author: string, firstSeq: number, bytes: Uint8Array[], hashes: string[], keepHead?: Head): Promise<PreparedWrite> {
    const segment = Math.floor((firstSeq - 1) / this.#segmentSize);
    const open = await this.#segment(author, segment);
    const doc = open.doc;
    appendToSegment(doc, { entries: bytes, hashes: hashes.map((h) => Buffer.from(h, "hex")) });
    const lastSeq = firstSeq + bytes.length - 1;
    const head: Head = keepHead ?? { seq: lastSeq, hash: hashes.at(-1) ?? null };
    const write = this.#store.prepare(author, segment, doc, open.chunks, encodeHead(head));
    this.#heads.set(author, head);
    if (lastSeq % this.#segmentSize === 0) this.#open.delete(`${author}\n${segment}`);
    else this.#open.set(`${author}\n${segment}`, { segment, doc, chunks: write.chunks });
    return write;
  }

  async #appendToChain(author: string, firstSeq: number, bytes: Uint8Array[], hashes: string[]): Promise<void> {
    await this.#persist(author, await this.#applyToChain(author, firstSeq, bytes, hashes));
  }

  async #addFork(author: string, segment: number, bytes: Uint8Array): Promise<void> {
    const open = await this.#segment(author, segment);
    const head = await this.#head(author);
    const doc = open.doc;
    appendToSegment(doc, { forks: [bytes] });
    const write = this.#store.prepare(author, segment, doc, open.chunks, encodeHead(head));
    this.#open.set(`${author}\n${segment}`, { segment, doc, chunks: write.chunks });
    await this.#persist(author, write);
  }

  async #persist(author: string, write: PreparedWrite): Promise<void> {
    try {
      await this.#store.write(write);
    } catch (err) {
      this.#forget(author);
      throw err;
    }
  }

  // After a failed write the cached documents and head are ahead of storage; reload them from storage next time.
  #forget(author: string): void {
    for (const key of this.#open.keys()) if (key.startsWith(`${author}\n`)) this.#open.delete(key);
    this.#heads.delete(author);
    if (author === this.#signer.peerId) this.#journaled = undefined;
  }

  async #ingestChain(author: string, key: Uint8Array, list: DecodedAuditEntry[], report: IngestReport): Promise<void> {
    const authentic = (d: DecodedAuditEntry): boolean => verifySignature(key, d.signed, d.sig);
    const reject = (d: DecodedAuditEntry): void => void report.rejected.push({ reason: `forged: bad signature on ${author}#${d.entry.seq}` });
    let run: DecodedAuditEntry[] = [];
    /** Appends the run; false when a forged entry in it cut the chain short of entries after it. */
    const flush = async (): Promise<boolean> => {
      let good = run;
      run = [];
      let whole = true;
      // The newest entry vouches for the run through the hash chain (see ingest); without it, each answers for itself.
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
        await this.#appendToChain(author, (good[0] as DecodedAuditEntry).entry.seq, good.map((d) => d.bytes), good.map((d) => d.entry.hash));
        report.appended += good.length;
      }
      return whole;
    };
    for (const decoded of list) {
      const { entry } = decoded;
      const last = run.at(-1)?.entry;
      let tip = last === undefined ? await this.#head(author) : { seq: last.seq, hash: last.hash };
      const extendsTip = (): boolean => entry.seq === tip.seq + 1 && entry.prev === tip.hash;
      if (!extendsTip() && run.length > 0) {
        if (!(await flush())) return;
        // A forged newest entry leaves the chain one shorter than the run was.
        tip = await this.#head(author);
      }
      if (extendsTip()) {
        run.push(decoded);
        if ((entry.seq % this.#segmentSize === 0 || run.length >= this.#maxBatch) && !(await flush())) return;
        continue;
      }
      if (entry.seq > tip.seq + 1) {
        report.gaps.push({ author, missingFrom: tip.seq + 1 });
        return;
      }
      const held = entry.seq <= tip.seq ? await this.#hashAt(author, entry.seq) : undefined;
      if (held === entry.hash) {
        report.duplicates++;
        continue;
      }
      if (!authentic(decoded)) {
        reject(decoded);
        continue;
      }
      const segment = Math.floor((entry.seq - 1) / this.#segmentSize);
      const open = await this.#segment(author, segment);
      if (segmentItems(open.doc, "forks").some((f) => Buffer.compare(f, decoded.bytes) === 0)) {
        report.duplicates++;
        continue;
      }
      await this.#addFork(author, segment, decoded.bytes);
      report.forks++;
    }
    await flush();
  }

  async #hashAt(author: string, seq: number): Promise<string | undefined> {
    const segment = Math.floor((seq - 1) / this.#segmentSize);
    const open = await this.#segment(author, segment);
    const stored = segmentItem(open.doc, "hashes", (seq - 1) % this.#segmentSize);
    return stored === undefined ? undefined : hex(stored);
  }

  async #segment(author: string, segment: number): Promise<OpenSegment> {
    const key = `${author}\n${segment}`;
    const cached = this.#open.get(key);
    if (cached !== undefined) return cached;
    const loaded = await this.#store.load(author, segment);
    const open: OpenSegment = loaded === undefined ? { segment, doc: this.#store.create(author, segment), chunks: 0 } : { segment, doc: loaded.doc, chunks: loaded.chunks };
    // Only open tails and recent fork targets are cached; everything else is reloaded on demand.
    if (this.#open.size >= 32) this.#open.clear();
    this.#open.set(key, open);
    return open;
  }

  async #head(author: string): Promise<Head> {
    const cached = this.#heads.get(author);
    if (cached !== undefined) return cached;
    const bytes = await this.#store.head(author);
    const head = bytes === undefined ? { seq: 0, hash: null } : decodeHead(bytes);
    this.#heads.set(author, head);
    return head;
  }

  async *#segmentsOf(author: string): AsyncIterable<{ segment: number; doc: A.Doc<SegmentDoc> }> {
    for (const segment of await this.#store.segments(author)) {
      const loaded = await this.#store.load(author, segment);
      if (loaded !== undefined) yield { segment, doc: loaded.doc };
    }
  }
}

function encodeHead(head: Head): Uint8Array {
  return canonicalEncode({ seq: head.seq, hash: head.hash });
}

function decodeHead(bytes: Uint8Array): Head {
  const v = canonicalDecode(bytes) as { seq?: unknown; hash?: unknown };
  if (!Number.isSafeInteger(v.seq) || !(v.hash === null || typeof v.hash === "string")) throw new TypeError("audit head record is malformed");
  return { seq: v.seq as number, hash: v.hash };
}
