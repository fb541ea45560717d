import { describe, expect, it } from "vitest";
import { TurnBatch } from "../../src/util/turn-batch.js";

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("turn batch", () => {
  it("hands over the first item of a turn at once when nothing is in flight, the rest together at the end of the turn", async () => {
    const handed: number[][] = [];
    const batch = new TurnBatch<number>((items) => handed.push(items), () => true);
    for (let i = 1; i <= 5; i++) batch.push(i);
    expect(handed).toEqual([[1]]);
    await nextTurn();
    expect(handed).toEqual([[1], [2, 3, 4, 5]]);
    batch.push(6);
    expect(handed).toEqual([[1], [2, 3, 4, 5], [6]]);
  });

  it("waits for the end of the turn while something is in flight, unless taken early", async () => {
    const handed: number[][] = [];
    const batch = new TurnBatch<number>((items) => handed.push(items), () => false);
    batch.push(1);
    batch.push(2);
    expect(handed).toEqual([]);
    batch.take();
    batch.push(3);
    expect(handed).toEqual([[1, 2]]);
    await nextTurn();
    expect(handed).toEqual([[1, 2], [3]]);
  });
});
