import type { Signer } from "../keys.js";
import { signAuditEntry, type AuditBody, type AuditEntry } from "./entry.js";
import { encodeHead, type Chains, type Head } from "./chains.js";
import { hex, type JournaledEntry, type PreparedWrite } from "./segments.js";

interface Pending {
  body: AuditBody;
  resolve: (entry: AuditEntry) => void;
  reject: (err: unknown) => void;
}

/** Settings of an {@link OwnChain}. */
export interface OwnChainOptions {
  /** Journaled entries are folded into their segment documents this long after the first of them, ms. */
  foldAfterMs: number;
  now: () => number;
}

/**
 * This node's own chain: the append path.
 *
 * Appends use group commit: entries waiting while a batch is being written are
 * signed and chained together into the next LevelDB batch, and each `append`
 * resolves once the batch holding it is durable. That batch is a journal of the
 * signed entries: folding them into the Automerge segment documents costs more
 * than the signatures, so it happens a little later, many entries per change,
 * and before anything reads the segments (or at the next open, after a crash).
 */
export class OwnChain {
  readonly #chains: Chains;
  readonly #signer: Signer;
  readonly #options: OwnChainOptions;
  #pending: Pending[] = [];
  #draining = false;
  #closed = false;
  #foldTimer: NodeJS.Timeout | undefined;
  /**
   * This node's journaled entries not folded yet, oldest first; undefined until
   * the first fold reads what a previous run left. Only this log writes the
   * journal, so afterwards memory is exact, and a fold need not iterate a key
   * range strewn with the tombstones of every entry folded before.
   */
  #journaled: JournaledEntry[] | undefined;

  constructor(chains: Chains, signer: Signer, options: OwnChainOptions) {
    this.#chains = chains;
    this.#signer = signer;
    this.#options = options;
  }

  /** Appends an entry to this node's log; resolves when it is durable. */
  append(body: AuditBody): Promise<AuditEntry> {
    if (this.#closed) return Promise.reject(new Error("audit log is closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ body, resolve, reject });
      if (!this.#draining) {
        this.#draining = true;
        // Deferred so that appends issued in the same tick share the first batch.
        queueMicrotask(() => void this.#chains.exclusive(() => this.#drain()));
      }
    });
  }

  /** Pending appends written and the journal folded into the segments: what readers of the segments need. */
  async settled(): Promise<void> {
    while (this.#draining) await this.#chains.writes;
    await this.#chains.exclusive(() => this.fold());
  }

  /** Refuses new appends and folds what is journaled; entries it cannot fold stay journaled for the next open. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#foldTimer);
    await this.settled().catch(() => undefined);
  }

  /** The journal held in memory is no longer what storage holds (a write failed): read it again at the next fold. */
  forgetJournal(): void {
    this.#journaled = undefined;
  }

  /**
   * Commits queued appends batch by batch. Signing and the Automerge change of the
   * next batch overlap the LevelDB write of the previous one; writes are applied in
   * order, and once one fails every later write is skipped and the cached state is
   * dropped, so storage never holds a batch whose predecessor is missing.
   */
  async #drain(): Promise<void> {
    const author = this.#signer.peerId;
    const segmentSize = this.#chains.segmentSize;
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
          const head = await this.#chains.head(author);
          const room = segmentSize - (head.seq % segmentSize);
          batch = this.#pending.splice(0, Math.min(this.#chains.maxBatch, room));
          const staged = this.#stage(author, head, batch.map((p) => p.body));
          const settled = batch;
          previous = previous
            .then(async () => {
              if (failure !== undefined) throw failure.error;
              await this.#chains.store.write(staged.write);
            })
            .then(
              () => {
                this.#journaled?.push(...staged.journaled);
                settled.forEach((p, i) => p.resolve(staged.entries[i] as AuditEntry));
                this.#scheduleFold();
              },
              (err: unknown) => {
                failure ??= { error: err };
                this.#chains.forget(author);
                for (const p of settled) p.reject(err);
              },
            );
          inFlight.push(previous);
          if (inFlight.length >= 2) await inFlight.shift();
        } catch (err) {
          if (batch.length === 0) batch = this.#pending.splice(0);
          this.#chains.forget(author);
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
    const time = this.#options.now();
    const encoded = bodies.map((body, i) => {
      const e = signAuditEntry(this.#signer, head.seq + 1 + i, hash, time, body);
      hash = e.entry.hash;
      return e;
    });
    const next: Head = { seq: head.seq + bodies.length, hash };
    const journaled = encoded.map((e) => ({ seq: e.entry.seq, hash: Buffer.from(e.entry.hash, "hex"), bytes: e.bytes }));
    const write = this.#chains.store.journalWrite(author, journaled, encodeHead(next));
    this.#chains.setHead(author, next);
    return { entries: encoded.map((e) => e.entry), journaled, write };
  }

  #scheduleFold(): void {
    if (this.#foldTimer !== undefined || this.#closed) return;
    this.#foldTimer = setTimeout(() => {
      this.#foldTimer = undefined;
      this.#chains.exclusive(() => this.fold()).catch(() => undefined);
    }, this.#options.foldAfterMs);
    this.#foldTimer.unref();
  }

  /**
   * Moves this node's journaled entries into their segment documents, one
   * change and one atomic batch per segment (which also removes them from the
   * journal). Each batch writes the chain's newest head, never an older one.
   * Call it exclusively (see {@link Chains.exclusive}), so no append is half-way
   * through meanwhile.
   */
  async fold(): Promise<void> {
    const author = this.#signer.peerId;
    const chains = this.#chains;
    const journal = (this.#journaled ??= await chains.store.journal(author));
    if (journal.length === 0) return;
    const head = await chains.head(author);
    while (journal.length > 0) {
      const segment = chains.segmentOf(journal[0]!.seq);
      let j = 0;
      while (j < journal.length && chains.segmentOf(journal[j]!.seq) === segment) j++;
      const run = journal.slice(0, j);
      const write = await chains.applyToChain(author, run[0]!.seq, run.map((e) => e.bytes), run.map((e) => hex(e.hash)), head);
      write.ops.push(...chains.store.journalDeletes(author, run.map((e) => e.seq)));
      await chains.persist(author, write);
      journal.splice(0, j);
    }
  }
}
