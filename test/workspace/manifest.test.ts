import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../identity/canonical.js";
import { HOSTILE_CASES, limitsOf } from "./hostile-manifests.js";
import { InvalidInputError } from "../../src/contract/errors.js";
import {
  blobDigest,
  blobsOf,
  buildManifest,
  buildManifestOfCheckedEntries,
  CHUNK_SIZE,
  decodeManifest,
  DEFAULT_MANIFEST_LIMITS,
  encodeManifest,
  totalSize,
  type Manifest,
  type ManifestEntry,
} from "../../src/workspace/manifest.js";
import { splitManifest } from "../../src/workspace/manifest-pieces.js";

const D = (n: number): string => blobDigest(new Uint8Array([n]));
const file = (path: string, size = 1, chunks = [D(1)]): ManifestEntry => ({ path, kind: "file", executable: false, size, chunks });

describe("manifest encoding", () => {
  const segment = fc.constantFrom("a", "b", "B", "c.txt", "é", "日本", "z-z", "_");
  const digest = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 });
  const entries = fc
    .uniqueArray(fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join("/")), { maxLength: 25 })
    // No entry may sit under another (a file or link is not a directory).
    .map((paths) => paths.filter((p) => !paths.some((q) => p.startsWith(`${q}/`))))
    .chain((paths) =>
      fc.tuple(
        ...paths.map((path) =>
          fc.oneof(
            fc.record({ size: fc.integer({ min: 0, max: 3 * CHUNK_SIZE }), executable: fc.boolean() }).chain(({ size, executable }) =>
              fc.array(digest, { minLength: Math.ceil(size / CHUNK_SIZE), maxLength: Math.ceil(size / CHUNK_SIZE) }).map((chunks): ManifestEntry => ({ path, kind: "file", executable, size, chunks })),
            ),
            segment.map((target): ManifestEntry => ({ path, kind: "symlink", target })),
          ),
        ),
      ),
    );

  it("round-trips through its canonical bytes, and the tree id does not depend on the order entries are given in", () => {
    fc.assert(
      fc.property(
        entries.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }))),
        ([list, shuffled]) => {
          const manifest = buildManifest(list);
          const bytes = encodeManifest(manifest);
          expect(decodeManifest(bytes)).toEqual(manifest);
          expect(encodeManifest(decodeManifest(bytes))).toEqual(bytes);
          // The manifest's own writer and the general canonical encoder agree byte for byte.
          expect(Buffer.from(bytes).equals(encodeCanonical(manifest))).toBe(true);
          expect(splitManifest(buildManifest(shuffled)).treeId).toBe(splitManifest(manifest).treeId);
          expect(splitManifest(manifest).treeId).toMatch(/^[0-9a-f]{64}$/);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("keeps entries in bytewise UTF-8 order, not UTF-16 order", () => {
    // U+FF5E sorts before U+1F600 in UTF-16 code units, after it in UTF-8 bytes.
    const manifest = buildManifest([file("\u{1F600}"), file("\uFF5E")]);
    expect(manifest.entries.map((e) => e.path)).toEqual(["\uFF5E", "\u{1F600}"]);
    expect(decodeManifest(encodeManifest(manifest))).toEqual(manifest);
  });

  it("writes sizes of every CBOR width canonically", () => {
    const limits = { ...DEFAULT_MANIFEST_LIMITS, maxFileBytes: 2 ** 33, maxTreeBytes: 2 ** 34 };
    const sizes = [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1];
    const manifest = buildManifest(
      sizes.map((size, i) => file(`f${i}`, size, Array.from({ length: Math.ceil(size / CHUNK_SIZE) }, () => D(i)))),
      limits,
    );
    const bytes = encodeManifest(manifest, limits);
    expect(Buffer.from(bytes).equals(encodeCanonical(manifest))).toBe(true);
    expect(decodeManifest(bytes, limits)).toEqual(manifest);
  });

  it("counts blobs once and sums sizes", () => {
    const manifest = buildManifest([file("a", 3, [D(1)]), file("b", CHUNK_SIZE + 1, [D(1), D(2)]), file("e", 0, []), { path: "l", kind: "symlink", target: "a" }]);
    expect(blobsOf(manifest)).toEqual(new Set([D(1), D(2)]));
    expect(totalSize(manifest)).toBe(CHUNK_SIZE + 4);
  });

  it("refuses bytes that are not the canonical encoding of a manifest", () => {
    const valid = encodeManifest(buildManifest([file("a")]));
    expect(() => decodeManifest(valid.subarray(0, valid.length - 1))).toThrow(/^manifest: not a canonical manifest encoding/);
    expect(() => decodeManifest(valid, { ...DEFAULT_MANIFEST_LIMITS, maxManifestBytes: valid.length - 1 })).toThrow(/exceeds the limit/);
    expect(() => decodeManifest(encodeCanonical({ version: 2, entries: [] }))).toThrow(/^version: /);
    expect(() => decodeManifest(encodeCanonical({ version: 1, entries: [], extra: 1 }))).toThrow(/unknown field\(s\): extra/);
    expect(() => decodeManifest(encodeCanonical({ version: 1, entries: [{ ...file("x/y"), mode: 7 }] }))).toThrow(/^entries\[0\]: unknown field\(s\): mode \(entry "x\/y"\)/);
    expect(() => decodeManifest(encodeCanonical({ version: 1, entries: [file("x", 1, [D(1).toUpperCase()])] }))).toThrow(/^entries\[0\]\.chunks\[0\]: is not a lowercase hex SHA-256 digest \(entry "x"\)/);
    expect(() => decodeManifest(encodeCanonical({ version: 1, entries: [{ path: "x", kind: "dir" }] }))).toThrow(/^entries\[0\]\.kind: /);
  });
});

describe("hostile manifests are refused when decoded, naming the entry", () => {
  it.each(HOSTILE_CASES)("$name", (hostile) => {
    const { entries, refusal } = hostile;
    const bytes = encodeCanonical({ version: 1, entries });
    const refused = (() => {
      try {
        decodeManifest(bytes, limitsOf(hostile));
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(refused).toBeInstanceOf(InvalidInputError);
    expect((refused as InvalidInputError).message).toMatch(refusal);
    expect((refused as InvalidInputError).field).toMatch(/^entries/);
    // The builder keeps the same rules, so nothing is ever encoded that a peer would refuse.
    expect(() => encodeManifest({ version: 1, entries } as unknown as Manifest, limitsOf(hostile))).toThrow(InvalidInputError);
  });
});

describe("a manifest of entries checked one by one (a snapshot's)", () => {
  const file = (path: string, size = 0): ManifestEntry => ({ path, kind: "file", executable: false, size, chunks: size === 0 ? [] : ["a".repeat(64)] });

  it("gives the bytes buildManifest gives for the same entries", () => {
    const entries = [file("b/c.txt", 3), file("a.txt"), { path: "l", kind: "symlink" as const, target: "a.txt" }];
    expect(encodeManifest(buildManifestOfCheckedEntries(entries.map((e) => ({ ...e }))))).toEqual(encodeManifest(buildManifest(entries)));
  });

  it("still refuses what no single entry shows: a path twice, a path under a file, a tree over its limits", () => {
    expect(() => buildManifestOfCheckedEntries([file("a"), file("a")])).toThrow(/appears twice/);
    expect(() => buildManifestOfCheckedEntries([file("a"), file("a/b")])).toThrow(/goes through the file "a"/);
    const limits = { ...DEFAULT_MANIFEST_LIMITS, maxTreeBytes: 5 };
    expect(() => buildManifestOfCheckedEntries([file("a", 3), file("b", 3)], limits)).toThrow(/over its limit of 5 bytes/);
  });
});
