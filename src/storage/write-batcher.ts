import type { AbstractSublevel } from "abstract-level";
import { TurnBatch } from "../util/turn-batch.js";
import type { Database } from "./level-database.js";

/** One LevelDB write; with `sublevel`, the key is that sublevel's (a sublevel of the batcher's database). */
export type WriteOp = ({ type: "put"; key: string; value: Uint8Array } | { type: "del"; key: string }) & {
  sublevel?: AbstractSublevel<Database, string | Buffer | Uint8Array, string, Uint8Array>;
};

interface QueuedWrite {
  ops: WriteOp[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: writes queued during one turn of the event loop go to LevelDB as
 * one atomic batch, and every caller's promise resolves when that batch is
 * durable. Under load this turns thousands of small writes per second into a few
 * hundred batches, which is what lets the engine keep up.
 */
export class WriteBatcher {
  private readonly turn = new TurnBatch<QueuedWrite>((queued) => this.commit(queued), () => false);
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly db: Database) {}

  /** Queue `ops` to be written atomically with everything else queued this turn. */
  write(ops: WriteOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => this.turn.push({ ops, resolve, reject }));
  }

  /**
   * Like {@link WriteBatcher.write}, but the batch, with everything queued
   * before it, goes to LevelDB now instead of at the end of the turn: for a
   * caller that is itself a turn's group commit (the task engine's flush), which
   * would otherwise wait a second turn.
   */
  writeNow(ops: WriteOp[]): Promise<void> {
    const written = this.write(ops);
    this.turn.take();
    return written;
  }

  /** Resolves when everything queued so far is durable. */
  async drain(): Promise<void> {
    this.turn.take();
    await this.inFlight;
  }

  private commit(queued: QueuedWrite[]): void {
    const ops = queued.flatMap((q) => q.ops);
    // Batches are chained so that LevelDB sees them in submission order.
    this.inFlight = this.inFlight.then(async () => {
      try {
        if (ops.length > 0) await this.db.batch(ops);
        for (const q of queued) q.resolve();
      } catch (err) {
        for (const q of queued) q.reject(err);
      }
    });
  }
}
