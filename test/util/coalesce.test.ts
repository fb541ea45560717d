import fc from "fast-check";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { AsyncQueue } from "../../src/util/async-queue.js";
import { coalesce } from "../../src/util/coalesce.js";

/** Pushes `bursts` into a queue, each burst in one turn, with a pause between bursts; then ends it (or fails). */
async function* produce(bursts: number[][], fail?: Error): AsyncGenerator<number> {
  const queue = new AsyncQueue<number>();
  void (async () => {
    for (const burst of bursts) {
      for (const item of burst) queue.push(item);
      await sleep(2);
    }
    queue.end();
  })();
  for (let r = await queue.next(); !r.done; r = await queue.next()) yield r.value;
  if (fail) throw fail;
}

describe("coalesce", () => {
  it("keeps every item in order, in batches of at most max, with a burst of one turn in one batch", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.integer(), { minLength: 1, maxLength: 20 }), { maxLength: 8 }), fc.integer({ min: 1, max: 25 }), async (bursts, max) => {
        const batches: number[][] = [];
        for await (const batch of coalesce(produce(bursts), max)) batches.push(batch);
        expect(batches.flat()).toEqual(bursts.flat());
        for (const b of batches) expect(b.length).toBeGreaterThan(0);
        for (const b of batches) expect(b.length).toBeLessThanOrEqual(max);
        // A burst never splits unless it exceeds max (on a slow machine two bursts may share a batch).
        expect(batches.length).toBeLessThanOrEqual(bursts.reduce((n, b) => n + Math.ceil(b.length / max), 0));
      }),
      { numRuns: 40 },
    );
  });

  it("hands over a batch that ends with the last item at once, without waiting for the turn to end", async () => {
    const queue = new AsyncQueue<number>();
    async function* source(): AsyncGenerator<number> {
      for (let r = await queue.next(); !r.done; r = await queue.next()) yield r.value;
    }
    const batches = coalesce(source(), 10, (n) => n === 3)[Symbol.asyncIterator]();
    const first = batches.next();
    let turnEnded = false;
    setImmediate(() => (turnEnded = true));
    for (const n of [1, 2, 3]) queue.push(n);
    expect((await first).value).toEqual([1, 2, 3]);
    expect(turnEnded).toBe(false);
    queue.end();
    expect((await batches.next()).done).toBe(true);
  });

  it("rethrows the source's failure after the items that came before it", async () => {
    const seen: number[] = [];
    const failure = new Error("source broke");
    await expect(
      (async () => {
        for await (const batch of coalesce(produce([[1, 2], [3]], failure), 10)) seen.push(...batch);
      })(),
    ).rejects.toBe(failure);
    expect(seen).toEqual([1, 2, 3]);
  });

  it("lets the first batch wait up to firstWithinMs for the last item, and only the first", async () => {
    const run = async (firstWithinMs?: number): Promise<number[][]> => {
      const queue = new AsyncQueue<number>();
      async function* source(): AsyncGenerator<number> {
        for (let r = await queue.next(); !r.done; r = await queue.next()) yield r.value;
      }
      const out: number[][] = [];
      const reading = (async () => {
        for await (const batch of coalesce(source(), 10, (n) => n === 3, firstWithinMs)) out.push(batch);
      })();
      queue.push(1);
      await sleep(5);
      queue.push(2);
      queue.push(3);
      queue.end();
      await reading;
      return out;
    };
    expect(await run(200)).toEqual([[1, 2, 3]]);
    expect(await run()).toEqual([[1], [2, 3]]);
  });
});
