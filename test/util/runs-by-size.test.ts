import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { runsBySize } from "../../src/util/runs-by-size.js";

describe("runsBySize", () => {
  it("keeps every item in order, fills each run up to max, and gives an oversized item a run of its own", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 })), fc.integer({ min: 1, max: 500 }), (sizes, max) => {
        const runs = [...runsBySize(sizes, (n) => n, max)];
        expect(runs.flat()).toEqual(sizes);
        const total = (run: number[]): number => run.reduce((a, b) => a + b, 0);
        runs.forEach((run, i) => {
          expect(run.length).toBeGreaterThan(0);
          if (run.length > 1) expect(total(run)).toBeLessThanOrEqual(max);
          // A run ends only where the next item would not fit.
          const next = runs[i + 1];
          if (next !== undefined) expect(total(run) + next[0]!).toBeGreaterThan(max);
        });
      }),
    );
  });
});
