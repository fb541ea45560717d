import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deviceIdentityFromSeed } from "../../../identity/index.js";
import { signHeads, signHeadsBatch, verifyHeads, type HeadsSignature } from "../../../protocols/sync/index.js";

const writer = deviceIdentityFromSeed(new Uint8Array(32).fill(7));
const other = deviceIdentityFromSeed(new Uint8Array(32).fill(9));
const head = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"));
const item = fc.record({ id: fc.string({ minLength: 1, maxLength: 40 }).map((s) => `task/${s}`), heads: fc.array(head, { minLength: 1, maxLength: 3 }) });

describe("signed document heads", () => {
  it("every document of a batch verifies alone, with one signature for the batch", () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 70 }), (items) => {
        const signatures = signHeadsBatch(writer, items);
        expect(new Set(signatures.map((s) => Buffer.from(s.sig).toString("hex"))).size).toBe(1);
        signatures.forEach((s, i) => expect(verifyHeads(items[i]!.id, s)).toBe(true));
      }),
      { numRuns: 60 },
    );
  });

  it("refuses any change to the id, heads, proof, writer or signature, and positions outside the batch", () => {
    fc.assert(
      // Distinct documents: two identical leaves could swap positions and still vouch for the same thing.
      fc.property(fc.uniqueArray(item, { minLength: 2, maxLength: 40, selector: (i) => i.id }), fc.nat(), fc.integer({ min: 0, max: 6 }), (items, pick, what) => {
        const at = pick % items.length;
        const s = signHeadsBatch(writer, items)[at]!;
        const id = items[at]!.id;
        const flip = (b: Uint8Array): Uint8Array => {
          const c = new Uint8Array(b);
          c[0] = c[0]! ^ 1;
          return c;
        };
        const tampered: Array<[string, HeadsSignature]> = [
          [id + "x", s],
          [id, { ...s, heads: [(s.heads[0]!.startsWith("0") ? "1" : "0") + s.heads[0]!.slice(1), ...s.heads.slice(1)] }],
          // Position and size only steer the walk to the root; no walk makes another document's leaf verify.
          [items[(at + 1) % items.length]!.id, { ...s, index: (s.index + 1) % s.size }],
          [id, { ...s, index: s.index + s.size }],
          [id, { ...s, proof: s.proof.length > 0 ? [flip(s.proof[0]!), ...s.proof.slice(1)] : [new Uint8Array(32)] }],
          [id, { ...s, writer: other.peerId }],
          [id, { ...s, sig: flip(s.sig) }],
        ];
        const [tid, ts] = tampered[what]!;
        // Another position of the same size may share the proof shape but never the leaf: still refused.
        expect(verifyHeads(tid, ts)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses proofs that do not fit the batch size, and malformed writers", () => {
    const s = signHeads(writer, "task/a", ["ab".repeat(32)]);
    expect(verifyHeads("task/a", s)).toBe(true);
    expect(verifyHeads("task/a", { ...s, proof: [randomBytes(32)] })).toBe(false);
    expect(verifyHeads("task/a", { ...s, index: -1 })).toBe(false);
    expect(verifyHeads("task/a", { ...s, size: 0 })).toBe(false);
    expect(verifyHeads("task/a", { ...s, writer: "not-a-device" })).toBe(false);
    expect(verifyHeads("task/a", { ...s, sig: s.sig.subarray(0, 63) })).toBe(false);
  });
});
