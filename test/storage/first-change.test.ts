import * as A from "@automerge/automerge";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeTaskDoc } from "../../src/engine/task-document.js";
import { readFirstChange } from "../../src/storage/first-change.js";
import { docRootListReader, docRootReader } from "../../src/storage/root-reader.js";

const ACTOR = "ab".repeat(16);

/** Values a document's root may hold, nested a little. */
const leaf = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  // Integers beyond 2^53 do not decode as numbers: such documents are left to Automerge (tested below).
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d) || Number.isSafeInteger(d)),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 4 }),
  fc.string({ maxLength: 8 }).map((s) => new A.ImmutableString(s)),
);
const value = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof({ maxDepth: 2 }, leaf, fc.array(tie("v"), { maxLength: 3 }), fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), tie("v"), { maxKeys: 3, noNullPrototype: true })),
})).v;
const rootObject = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), value, { minKeys: 1, maxKeys: 6, noNullPrototype: true });

describe("readFirstChange", () => {
  it("property: a document's first change is read as Automerge loads it: same heads, same root values", () => {
    fc.assert(
      fc.property(rootObject, (root) => {
        const doc = A.from(root, { actor: ACTOR });
        const [bytes] = A.getAllChanges(doc);
        const first = readFirstChange(bytes!);
        expect(first).toBeDefined();
        const loaded = A.load(bytes!);
        expect(first!.heads).toEqual(A.getHeads(loaded));
        const reader = docRootReader(loaded);
        const lists = docRootListReader(loaded);
        for (const key of [...Object.keys(root), "absent"]) {
          expect(first!.root(key)).toEqual(reader(key));
          // Lists made at the root read in the same order as Automerge builds them.
          expect(first!.lists(key)).toEqual(lists(key));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("reads a task document as encoded for storage", () => {
    const spec = JSON.stringify({ description: "d", input: "x", createdAt: 5 });
    const { bytes, heads } = encodeTaskDoc({ id: "t-1", status: "completed", spec, events: ["[1]", "[2]", "[3]"] }, ACTOR);
    const first = readFirstChange(bytes);
    expect(first?.heads).toEqual(heads);
    expect([first?.root("v"), first?.root("status"), first?.root("spec"), first?.root("events")]).toEqual([2, "completed", spec, undefined]);
    expect(first?.lists("events")).toEqual(["[1]", "[2]", "[3]"]);
  });

  it("leaves to Automerge whatever is not a self-contained first change", () => {
    const doc = A.from({ n: 1, list: ["a"] }, { actor: ACTOR });
    const [firstBytes] = A.getAllChanges(doc);
    const later = A.change(doc, (d) => {
      d.n = 2;
      d.list.push("b");
    });
    const secondChange = A.getChanges(doc, later)[0]!;
    const corrupt = new Uint8Array(firstBytes!);
    corrupt[5]! ^= 1;
    const cases: Array<[string, Uint8Array]> = [
      ["a later change", secondChange],
      ["a saved document", A.save(later)],
      ["two changes", Buffer.concat([firstBytes!, secondChange])],
      ["a bad checksum", corrupt],
      ["garbage", new Uint8Array([0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 1, 9, 9])],
      ["an integer no number holds", A.getAllChanges(A.from({ big: 2 ** 53 }, { actor: ACTOR }))[0]!],
      ["nothing", new Uint8Array()],
    ];
    for (const [what, bytes] of cases) expect(readFirstChange(bytes), what).toBeUndefined();
  });

  it("leaves to Automerge a first change that touches objects it did not make or replaces values", () => {
    type Op = Parameters<typeof A.encodeChange>[0]["ops"][number];
    const encode = (ops: unknown[]): Uint8Array => A.encodeChange({ actor: ACTOR, author: null, seq: 1, startOp: 1, time: 0, message: null, deps: [], ops: ops as Op[] });
    const ok = encode([{ action: "set", obj: "_root", key: "a", value: "x", pred: [] }]);
    expect(readFirstChange(ok)?.root("a")).toBe("x");
    const cases: Array<[string, unknown[]]> = [
      ["an object made elsewhere", [{ action: "set", obj: `7@${"cd".repeat(16)}`, key: "a", value: "x", pred: [] }]],
      ["a replaced value", [{ action: "set", obj: "_root", key: "a", value: "x", pred: [`9@${ACTOR}`] }]],
      ["a key set twice", [{ action: "set", obj: "_root", key: "a", value: "x", pred: [] }, { action: "set", obj: "_root", key: "a", value: "y", pred: [] }]],
      ["a deletion", [{ action: "del", obj: "_root", key: "a", pred: [] }]],
      [
        "an insert after an element it did not make",
        [
          { action: "makeList", obj: "_root", key: "l", pred: [] },
          { action: "set", obj: `1@${ACTOR}`, elemId: `5@${"cd".repeat(16)}`, insert: true, value: "x", pred: [] },
        ],
      ],
    ];
    for (const [what, ops] of cases) {
      let bytes: Uint8Array;
      try {
        bytes = encode(ops);
      } catch {
        continue; // Automerge would not even encode it.
      }
      expect(readFirstChange(bytes), what).toBeUndefined();
    }
  });
});
