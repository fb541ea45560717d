import type { AbstractSublevel } from "abstract-level";
import type { Database } from "./level-database.js";

/** One LevelDB write; with `sublevel`, the key is that sublevel's (a sublevel of the batcher's database). */
export type WriteOp = ({ type: "put"; key: string; value: Uint8Array } | { type: "del"; key: string }) & {
  sublevel?: AbstractSublevel<Database, string | Buffer | Uint8Array, string, Uint8Array>;
};

/**
 * Group commit: writes queued during one turn of the event loop go to LevelDB as
 * one atomic batch, and every caller's promise resolves when that batch is
 * durable. Under load this turns thousands of small writes per second into a few
 * hundred batches, which is what lets the engine keep up.
 */
export class WriteBatcher {
  private pending: WriteOp[] = [];
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private scheduled = false;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly db: Database) {}

  /** Queue `ops` to be written atomically with everything else queued this turn. */
  write(ops: WriteOp[]): Promise<void> {
    for (const op of ops) this.pending.push(op);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Like {@link WriteBatcher.write}, but the batch, with everything queued
   * before it, goes to LevelDB now instead of at the end of the turn: for a
   * caller that is itself a turn's group commit (the task engine's flush), which
   * would otherwise wait a second turn.
   */
  writeNow(ops: WriteOp[]): Promise<void> {
    const written = this.write(ops);
    this.flush();
    return written;
  }

  /** Resolves when everything queued so far is durable. */
  async drain(): Promise<void> {
    if (this.pending.length > 0) await this.write([]);
    await this.inFlight;
  }

  private flush(): void {
    this.scheduled = false;
    if (this.waiters.length === 0) return;
    const ops = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    // Batches are chained so that LevelDB sees them in submission order.
    this.inFlight = this.inFlight.then(async () => {
      try {
        if (ops.length > 0) await this.db.batch(ops);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    });
  }
}
