import * as A from "@automerge/automerge";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mergedMapEntries } from "../../src/storage/merged-map.js";

type SetDoc = { s: Record<string, string> };

/** A document made on its own node: its own map at `s`, holding `keys`. */
function made(keys: readonly string[], actor: string): A.Doc<SetDoc> {
  return A.change(A.from<SetDoc>({ s: {} }, { actor }), (d) => {
    for (const k of keys) d.s[k] = `v-${k}`;
  });
}

describe("mergedMapEntries", () => {
  it("property: documents made apart and merged in any order hold the union of what each wrote", () => {
    const key = fc.stringMatching(/^[a-z]{1,6}$/);
    fc.assert(
      fc.property(fc.array(fc.uniqueArray(key, { maxLength: 6 }), { minLength: 1, maxLength: 4 }), fc.boolean(), (sets, reverse) => {
        const docs = sets.map((keys, i) => made(keys, (i + 1).toString(16).padStart(2, "0").repeat(16)));
        const ordered = reverse ? docs.reverse() : docs;
        const merged = ordered.slice(1).reduce((acc, d) => A.merge(acc, d), A.clone(ordered[0]!));
        const union = new Set(sets.flat());
        const entries = mergedMapEntries(merged, "s");
        expect(new Set(entries.keys())).toEqual(union);
        for (const [k, v] of entries) expect(v).toBe(`v-${k}`);
      }),
      { numRuns: 100 },
    );
  });

  it("reads an unconflicted map, and nothing where the key holds no map", () => {
    const doc = A.from<{ s: Record<string, number>; n: number }>({ s: { a: 1 }, n: 2 });
    expect([...mergedMapEntries(doc, "s")]).toEqual([["a", 1]]);
    expect(mergedMapEntries(doc, "n").size).toBe(0);
    expect(mergedMapEntries(doc, "missing").size).toBe(0);
  });
});
