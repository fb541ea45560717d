import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../identity/canonical.js";
import { InvalidInputError } from "../../src/contract/errors.js";
import { blobDigest, buildManifest, CHUNK_SIZE, DEFAULT_MANIFEST_LIMITS, encodeManifest, type Manifest, type ManifestEntry } from "../../src/workspace/manifest.js";
import { CUT_EVERY, decodeManifestIndex, joinManifest, pathCutHash, PIECE_TARGET_BYTES, splitManifest, splitManifestReusing, type PiecedManifest } from "../../src/workspace/manifest-pieces.js";
import { HOSTILE_CASES, limitsOf } from "./hostile-manifests.js";

const D = (n: number): string => blobDigest(new Uint8Array([n & 0xff, n >> 8, n >> 16]));
const file = (path: string, n = 1): ManifestEntry => ({ path, kind: "file", executable: false, size: 10, chunks: [D(n)] });
const tree = (count: number): ManifestEntry[] => Array.from({ length: count }, (_, i) => file(`src/d${Math.floor(i / 100)}/f${i}.txt`, i));
const index = (digests: string[]): Uint8Array => encodeCanonical({ version: 1, pieces: digests });

function refusal(run: () => unknown): InvalidInputError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return err as InvalidInputError;
  }
  throw new Error("not refused");
}

describe("manifest pieces", () => {
  it("split then joined gives the manifest back, for any entry list; the tree id does not depend on the order entries are given in", () => {
    const segment = fc.constantFrom("a", "b", "B", "c.txt", "é", "日本", "z-z", "_", "x0", "x1", "x2", "x3");
    const entries = fc
      .uniqueArray(fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/")), { maxLength: 900 })
      .map((paths) => paths.filter((p) => !paths.some((q) => p.startsWith(`${q}/`))))
      .chain((paths) =>
        fc.tuple(
          ...paths.map((path, i) =>
            fc.oneof(
              fc.integer({ min: 0, max: 3 * CHUNK_SIZE }).map((size): ManifestEntry => ({ path, kind: "file", executable: i % 3 === 0, size, chunks: Array.from({ length: Math.ceil(size / CHUNK_SIZE) }, (_, k) => D(i * 4 + k)) })),
              segment.map((target): ManifestEntry => ({ path, kind: "symlink", target })),
            ),
          ),
        ),
      );
    fc.assert(
      fc.property(
        entries.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }))),
        ([list, shuffled]) => {
          const manifest = buildManifest(list);
          const split = splitManifest(manifest);
          expect(split.treeId).toBe(blobDigest(split.index));
          expect(decodeManifestIndex(split.treeId, split.index)).toEqual(split.pieces.map((p) => p.digest));
          expect(joinManifest(split.treeId, split.index, split.pieces.map((p) => p.bytes))).toEqual(manifest);
          expect(splitManifest(buildManifest(shuffled)).treeId).toBe(split.treeId);
          // A tree small enough for one piece travels as the manifest it always was.
          if (split.pieces.length === 1) expect(Buffer.from(split.pieces[0]!.bytes).equals(encodeManifest(manifest))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("pieces hold about CUT_EVERY entries each; a changed file changes one piece, an added file at most two", () => {
    const entries = tree(20_000);
    const before = splitManifest(buildManifest(entries));
    const sizes = before.pieces.map((p) => p.bytes.byteLength);
    expect(before.pieces.length).toBeGreaterThan(20_000 / CUT_EVERY / 2);
    expect(before.pieces.length).toBeLessThan((20_000 / CUT_EVERY) * 2);
    expect(Math.max(...sizes)).toBeLessThan(PIECE_TARGET_BYTES + 1024);
    expect(before.index.byteLength).toBeLessThan(before.pieces.length * 70);
    const digests = new Set(before.pieces.map((p) => p.digest));
    const changed = (list: ManifestEntry[]): number => splitManifest(buildManifest(list)).pieces.filter((p) => !digests.has(p.digest)).length;

    for (const at of [0, 7, 9_999, 19_999]) {
      const edited = [...entries];
      edited[at] = file(edited[at]!.path, 1_000_000 + at);
      expect(changed(edited), `entry ${at} changed`).toBe(1);
    }
    expect(changed([...entries, file("src/d50/new.txt", 5)])).toBeLessThanOrEqual(2);
    expect(changed(entries.filter((_, i) => i !== 12_345))).toBeLessThanOrEqual(2);
  });

  it("a split that takes pieces from an earlier one gives the bytes a split from scratch gives, whatever changed in between", () => {
    type Edit = { at: number; what: "content" | "remove" | "mode" | "insert" | "link" };
    const edit = fc.record({ at: fc.nat(), what: fc.constantFrom("content", "remove", "mode", "insert", "link") }) as fc.Arbitrary<Edit>;
    const apply = (entries: ManifestEntry[], edits: Edit[], round: string): ManifestEntry[] => {
      const out = [...entries];
      for (const [k, { at, what }] of edits.entries()) {
        const i = at % (out.length + 1);
        const old = out[i];
        if (what === "insert" || old === undefined) out.push(file(`${old?.path ?? "zz/end"}.${round}${k}`, 90_000 + k));
        else if (what === "remove") out.splice(i, 1);
        else if (what === "content") out[i] = file(old.path, 80_000 + k);
        else if (what === "mode" && old.kind === "file") out[i] = { ...old, executable: !old.executable };
        else out[i] = { path: old.path, kind: "symlink", target: `t${k}` };
      }
      return out;
    };
    // Compared as bytes: a deep equality walks each byte of each piece as an element.
    const bytesOf = (split: PiecedManifest): Buffer => Buffer.concat([Buffer.from(split.treeId), split.index, ...split.pieces.flatMap((p) => [Buffer.from(p.digest), p.bytes])]);
    const expectSame = (split: PiecedManifest, manifest: Manifest): void => expect(bytesOf(split).equals(bytesOf(splitManifest(manifest)))).toBe(true);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 800 }), fc.array(edit, { maxLength: 6 }), fc.array(edit, { maxLength: 3 }), (count, edits, more) => {
        const base = buildManifest(tree(count));
        const { pieced: first, runs } = splitManifestReusing(base, DEFAULT_MANIFEST_LIMITS, undefined);
        expectSame(first, base);
        const changed = buildManifest(apply(tree(count), edits, "a"));
        const again = splitManifestReusing(changed, DEFAULT_MANIFEST_LIMITS, runs);
        expectSame(again.pieced, changed);
        const third = buildManifest(apply(apply(tree(count), edits, "a"), more, "b"));
        expectSame(splitManifestReusing(third, DEFAULT_MANIFEST_LIMITS, again.runs).pieced, third);
      }),
      { numRuns: 150 },
    );
  });

  it("takes again every piece an unchanged run of entries made, and encodes only the one a changed file is in", () => {
    const entries = tree(20_000);
    const { pieced: before, runs } = splitManifestReusing(buildManifest(entries), DEFAULT_MANIFEST_LIMITS, undefined);
    const same = splitManifestReusing(buildManifest(tree(20_000)), DEFAULT_MANIFEST_LIMITS, runs).pieced;
    expect(same.pieces.every((p, i) => p === before.pieces[i])).toBe(true);
    const edited = [...entries];
    edited[9_999] = file(edited[9_999]!.path, 1_000_000);
    const after = splitManifestReusing(buildManifest(edited), DEFAULT_MANIFEST_LIMITS, runs).pieced;
    expect(after.pieces.filter((p) => !before.pieces.includes(p))).toHaveLength(1);
    expect(after.treeId).toBe(splitManifest(buildManifest(edited)).treeId);
  });

  it("a run of paths that never hash to a cut is still cut by size", () => {
    const entries: ManifestEntry[] = [];
    for (let i = 0; entries.length < 2_000; i++) {
      const path = `p${String(i).padStart(6, "0")}`;
      if (pathCutHash(path) % CUT_EVERY !== 0) entries.push(file(path, i));
    }
    const { pieces } = splitManifest(buildManifest(entries));
    expect(pieces.length).toBeGreaterThan(1);
    for (const piece of pieces) expect(piece.bytes.byteLength).toBeLessThan(PIECE_TARGET_BYTES + 1024);
  });

  describe("refuses, naming what is wrong", () => {
    const { treeId, index: good, pieces } = splitManifest(buildManifest(tree(1_000)));
    const bytes = pieces.map((p) => p.bytes);

    it("an index that is not the tree's, or not an index", () => {
      expect(refusal(() => joinManifest(blobDigest(new Uint8Array([1])), good, bytes)).message).toMatch(/^index: the index does not hash to tree id/);
      const old = encodeManifest(buildManifest(tree(3)));
      expect(refusal(() => joinManifest(blobDigest(old), old, [])).message).toMatch(/^index: not a canonical manifest index/);
      const bad = encodeCanonical({ version: 1, pieces: ["../../etc"] });
      expect(refusal(() => joinManifest(blobDigest(bad), bad, [])).message).toMatch(/^index\.pieces\[0\]: is not a lowercase hex SHA-256 digest/);
      const many = index(Array.from({ length: 3 }, (_, i) => D(i)));
      expect(refusal(() => decodeManifestIndex(blobDigest(many), many, { ...DEFAULT_MANIFEST_LIMITS, maxEntries: 2 })).message).toMatch(/^index\.pieces: 3 pieces exceed the limit of 2 entries/);
    });

    it("pieces missing, swapped, or not matching their digest", () => {
      expect(refusal(() => joinManifest(treeId, good, bytes.slice(1))).message).toMatch(/^index\.pieces: \d+ pieces given for an index of \d+/);
      const swapped = [bytes[1]!, bytes[0]!, ...bytes.slice(2)];
      expect(refusal(() => joinManifest(treeId, good, swapped)).message).toMatch(/^pieces\[0\]: the piece does not hash to/);
    });

    it("pieces cut where the format does not cut: the same entries under another tree id", () => {
      const whole = encodeManifest(buildManifest(tree(1_000)));
      const one = index([blobDigest(whole)]);
      expect(refusal(() => joinManifest(blobDigest(one), one, [whole])).message).toMatch(/^pieces\[0\]: the manifest is not cut into pieces where its format cuts it/);
      const halves = [tree(1_000).slice(0, 500), tree(1_000).slice(500)].map((part) => encodeManifest(buildManifest(part)));
      const two = index(halves.map(blobDigest));
      expect(refusal(() => joinManifest(blobDigest(two), two, halves)).message).toMatch(/the manifest is not cut into pieces where its format cuts it/);
      const empty = encodeCanonical({ version: 1, entries: [] });
      const withEmpty = index([...pieces.map((p) => p.digest), blobDigest(empty)]);
      expect(refusal(() => joinManifest(blobDigest(withEmpty), withEmpty, [...bytes, empty])).message).toMatch(/^pieces\[\d+\]: the piece holds no entry/);
    });

    // Each hostile manifest sent as two pieces (its first entry, then the rest): the rules across entries hold across pieces.
    it.each(HOSTILE_CASES)("$name", (hostile) => {
      const parts = [hostile.entries.slice(0, 1), hostile.entries.slice(1)].filter((p) => p.length > 0).map((part) => encodeCanonical({ version: 1, entries: part }));
      const ix = index(parts.map(blobDigest));
      const refused = refusal(() => joinManifest(blobDigest(ix), ix, parts, limitsOf(hostile)));
      // A malformed entry is named within its piece; a broken rule across entries by its place in the tree.
      const local = refused.message.match(/^pieces\[(\d+)\]\.(.*)$/s);
      if (local === null) expect(refused.message).toMatch(hostile.refusal);
      else expect(local[2]).toMatch(new RegExp(hostile.refusal.source.replace(/^\^entries\\\[\d+\\\]/, "^entries\\[\\d+\\]")));
    });
  });
});
