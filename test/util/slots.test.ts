import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSlots, type SlotTaken } from "../../src/util/slots.js";

describe("slots bounded in all and per key", () => {
  it("never holds more than either bound, gives a slot back once however often it is released, and refuses saying which bound", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.nat(20)), { maxLength: 200 }), (steps) => {
        const slots = createSlots(5, 2);
        const taken: Array<{ key: number; release: () => void }> = [];
        const perKey = (key: number): number => taken.filter((t) => t.key === key).length;
        for (const [take, key, pick] of steps) {
          if (take) {
            const answer: SlotTaken = slots.take(String(key));
            if ("release" in answer) taken.push({ key, release: answer.release });
            else if (answer.refused === "key") expect(perKey(key)).toBe(2);
            else expect(taken.length).toBe(5);
          } else if (taken.length > 0) {
            const [one] = taken.splice(pick % taken.length, 1);
            one!.release();
            one!.release();
          }
          expect(slots.held()).toBe(taken.length);
          expect(taken.length).toBeLessThanOrEqual(5);
        }
      }),
    );
  });
});
