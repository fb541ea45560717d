import { describe, expect, it } from "vitest";
import { AsyncQueue } from "../../src/util/async-queue.js";

describe("AsyncQueue", () => {
  it("hands what was queued before a failure, then rejects every read with it; later pushes are dropped", async () => {
    const queue = new AsyncQueue<number>();
    queue.push(1);
    queue.push(2);
    const failure = new Error("gone");
    queue.fail(failure);
    queue.push(3);
    queue.end();
    expect(await queue.next()).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    await expect(queue.next()).rejects.toBe(failure);
    await expect(queue.next()).rejects.toBe(failure);
  });

  it("wakes a waiting reader with an item, an end or a failure", async () => {
    const queue = new AsyncQueue<string>();
    const first = queue.next();
    queue.push("a");
    expect(await first).toEqual({ value: "a", done: false });
    const ended = queue.next();
    queue.end();
    expect(await ended).toEqual({ value: undefined, done: true });
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    const failing = new AsyncQueue<string>();
    const waiting = failing.next();
    failing.fail(new Error("broke"));
    await expect(waiting).rejects.toThrow("broke");
  });
});
