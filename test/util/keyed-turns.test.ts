import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KeyedTurns } from "../../src/util/keyed-turns.js";

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("KeyedTurns", () => {
  it("runs the work of one key one piece at a time in the order asked, and different keys at once, failures included", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ key: fc.constantFrom("a", "b", "c"), ticks: fc.nat(3), fails: fc.boolean() }), { maxLength: 30 }), async (pieces) => {
        const turns = new KeyedTurns();
        const running = new Map<string, number>();
        const order: Array<[string, number]> = [];
        let atOnce = 0;
        let mostAtOnce = 0;
        const outcomes = pieces.map((piece, i) =>
          turns.run(piece.key, async () => {
            expect(running.get(piece.key) ?? 0).toBe(0);
            running.set(piece.key, 1);
            mostAtOnce = Math.max(mostAtOnce, ++atOnce);
            order.push([piece.key, i]);
            for (let t = 0; t < piece.ticks; t++) await tick();
            running.set(piece.key, 0);
            atOnce--;
            if (piece.fails) throw new Error(`piece ${i}`);
            return i;
          }),
        );
        const settled = await Promise.allSettled(outcomes);
        settled.forEach((s, i) => expect(s).toEqual(pieces[i]!.fails ? { status: "rejected", reason: new Error(`piece ${i}`) } : { status: "fulfilled", value: i }));
        for (const key of ["a", "b", "c"]) {
          expect(order.filter(([k]) => k === key).map(([, i]) => i)).toEqual(pieces.flatMap((p, i) => (p.key === key ? [i] : [])));
          await tick();
          expect(turns.has(key)).toBe(false);
        }
        expect(mostAtOnce).toBeLessThanOrEqual(new Set(pieces.map((p) => p.key)).size);
      }),
      { numRuns: 100 },
    );
  });

  it("has a key while its work is queued or running, and settles once all of it has", async () => {
    const turns = new KeyedTurns();
    let release!: () => void;
    const first = turns.run("k", () => new Promise<void>((resolve) => (release = resolve)));
    const second = turns.run("k", async () => "second");
    expect(turns.has("k")).toBe(true);
    expect(turns.has("other")).toBe(false);
    let settled = false;
    const all = turns.settled().then(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    release();
    await first;
    expect(await second).toBe("second");
    await all;
    expect(settled).toBe(true);
  });

  it("frees a key by the time whoever awaited its last piece goes on", async () => {
    const turns = new KeyedTurns();
    await turns.run("k", async () => undefined);
    expect(turns.has("k")).toBe(false);
    await turns.run("k", () => Promise.reject(new Error("no"))).catch(() => undefined);
    expect(turns.has("k")).toBe(false);
  });
});
