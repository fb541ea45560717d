import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { mapPool } from "../../src/workspace/pool.js";

describe("mapPool", () => {
  it("keeps input order and never runs more than the bound at once", async () => {
    let running = 0;
    let most = 0;
    const results = await mapPool([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running += 1;
      most = Math.max(most, running);
      await sleep(n * 3);
      running -= 1;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30, 0]);
    expect(most).toBe(2);
  });

  it("after a failure starts nothing new and rejects only once the calls in flight have settled", async () => {
    const started: number[] = [];
    const settled: number[] = [];
    const run = mapPool([0, 1, 2, 3, 4, 5], 3, async (n) => {
      started.push(n);
      await sleep(n === 0 ? 5 : 40);
      settled.push(n);
      if (n === 0) throw new Error("first fails");
      return n;
    });
    await expect(run).rejects.toThrow("first fails");
    expect(started).toEqual([0, 1, 2]);
    expect(settled.sort()).toEqual([0, 1, 2]);
  });
});
