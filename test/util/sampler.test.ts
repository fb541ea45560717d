import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSampler } from "../../src/util/rate-limiter.js";

describe("createSampler", () => {
  it("lets through a burst, then one per period, per key, each counting those held back before it", () => {
    let clock = 0;
    const sample = createSampler({ framesPerSecond: 0.1, burst: 3, now: () => clock });
    expect([1, 2, 3, 4, 5].map(() => sample("a"))).toEqual([0, 0, 0, undefined, undefined]);
    expect(sample("b")).toBe(0);
    clock += 10_000;
    expect(sample("a")).toBe(2);
    expect(sample("a")).toBeUndefined();
  });

  it("accounts for every event: those let through and those they say were held back add up to all", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom("a", "b", "c"), fc.integer({ min: 0, max: 30_000 })), { maxLength: 300 }), (events) => {
        let clock = 0;
        const sample = createSampler({ framesPerSecond: 0.1, burst: 5, now: () => clock });
        const counted = new Map<string, number>();
        const held = new Map<string, number>();
        for (const [key, wait] of events) {
          clock += wait;
          const skipped = sample(key);
          if (skipped === undefined) held.set(key, (held.get(key) ?? 0) + 1);
          else {
            counted.set(key, (counted.get(key) ?? 0) + 1 + skipped);
            expect(skipped).toBe(held.get(key) ?? 0);
            held.delete(key);
          }
        }
        for (const key of ["a", "b", "c"]) expect((counted.get(key) ?? 0) + (held.get(key) ?? 0)).toBe(events.filter(([k]) => k === key).length);
      }),
    );
  });
});
