import { blobDigest, CHUNK_SIZE, DEFAULT_MANIFEST_LIMITS, type ManifestLimits } from "../../src/workspace/manifest.js";

const D = (n: number): string => blobDigest(new Uint8Array([n]));
const file = (path: string, size = 1, chunks = [D(1)]) => ({ path, kind: "file", executable: false, size, chunks });
const link = (path: string, target: string) => ({ path, kind: "symlink", target });

/** One hostile manifest: its entries as a peer might send them, and what the refusal must say. */
export interface HostileCase {
  readonly name: string;
  readonly entries: readonly Record<string, unknown>[];
  readonly limits?: Partial<ManifestLimits>;
  /** The start of the error message: the field of the offending entry and its path. */
  readonly refusal: RegExp;
}

/**
 * Every rule of the format, broken once. The paths aim at `../../canary`,
 * which in the materialisation test is a directory next to the target's parent.
 */
export const HOSTILE_CASES: readonly HostileCase[] = [
  { name: "absolute path", entries: [file("/tmp/canary-abs/pwned")], refusal: /^entries\[0\]\.path: "\/tmp\/canary-abs\/pwned" is absolute/ },
  { name: "leading ..", entries: [file("../../canary/pwned")], refusal: /^entries\[0\]\.path: "\.\.\/\.\.\/canary\/pwned" has a "\.\." segment/ },
  { name: "inner ..", entries: [file("a/../../../canary/pwned")], refusal: /^entries\[0\]\.path: "a\/\.\.\/\.\.\/\.\.\/canary\/pwned" has a "\.\." segment/ },
  { name: ". segment", entries: [file("./a")], refusal: /^entries\[0\]\.path: "\.\/a" has a "\." segment/ },
  { name: "empty segment", entries: [file("a//b")], refusal: /^entries\[0\]\.path: "a\/\/b" has an empty segment/ },
  { name: "trailing slash", entries: [file("a/")], refusal: /^entries\[0\]\.path: "a\/" has an empty segment/ },
  { name: "empty path", entries: [file("")], refusal: /^entries\[0\]\.path: "" is empty/ },
  { name: "backslash", entries: [file("a\\..\\..\\canary")], refusal: /^entries\[0\]\.path: .* contains a backslash/ },
  { name: "NUL", entries: [file("a\0b")], refusal: /^entries\[0\]\.path: "a\\u0000b" contains NUL/ },
  { name: ".git segment", entries: [file("a"), file("sub/.git/hooks/pre-commit")], refusal: /^entries\[1\]\.path: "sub\/\.git\/hooks\/pre-commit" has a \.git segment/ },
  { name: ".GIT segment, any case", entries: [file(".GIT/config")], refusal: /^entries\[0\]\.path: "\.GIT\/config" has a \.git segment/ },
  { name: "out of order", entries: [file("b"), file("a")], refusal: /^entries\[1\]\.path: "a" is out of order/ },
  { name: "duplicate", entries: [file("a"), link("a", "b")], refusal: /^entries\[1\]\.path: "a" appears twice/ },
  { name: "path through a symlink", entries: [link("s", "d"), file("s/pwned")], refusal: /^entries\[1\]\.path: "s\/pwned" goes through the symlink "s"/ },
  { name: "path through a file", entries: [file("f"), file("f/x")], refusal: /^entries\[1\]\.path: "f\/x" goes through the file "f"/ },
  { name: "symlink to an absolute path", entries: [link("s", "/tmp")], refusal: /^entries\[0\]\.target: "s" -> "\/tmp" points to an absolute path/ },
  { name: "symlink climbing out", entries: [link("a/s", "../../../canary")], refusal: /^entries\[0\]\.target: "a\/s" -> "\.\.\/\.\.\/\.\.\/canary" points outside the tree/ },
  {
    name: "symlink out through another symlink (lexically inside)",
    entries: [link("a/s", ".."), link("t", "a/s/..")],
    refusal: /^entries\[1\]\.target: "t" -> "a\/s\/\.\." points outside the tree/,
  },
  { name: "symlink loop", entries: [link("a", "b/x"), link("b", "a/x")], refusal: /^entries\[0\]\.target: "a" -> "b\/x" passes through more than 40 symlinks/ },
  { name: "symlink into .git", entries: [link("s", "x/../.git/config")], refusal: /^entries\[0\]\.target: "s" -> "x\/\.\.\/\.git\/config" points into \.git/ },
  { name: "symlink with an empty target", entries: [link("s", "")], refusal: /^entries\[0\]\.target: "s" -> "" has an empty target/ },
  { name: "size not matching the chunks", entries: [file("a", CHUNK_SIZE + 1, [D(1)])], refusal: /^entries\[0\]\.chunks: "a" has 1 chunks for 1048577 bytes \(expected 2\)/ },
  { name: "chunks for an empty file", entries: [file("a", 0, [D(1)])], refusal: /^entries\[0\]\.chunks: "a" has 1 chunks for 0 bytes/ },
  { name: "negative size", entries: [file("a", -1, [])], refusal: /^entries\[0\]\.size: .*"a"/ },
  { name: "too many entries", entries: [file("a"), file("b"), file("c")], limits: { maxEntries: 2 }, refusal: /^entries: 3 entries exceed the limit of 2/ },
  { name: "path too long", entries: [file("a".repeat(4097))], refusal: /^entries\[0\]\.path: "a{120}\.\.\." is longer than 4096 bytes/ },
  { name: "file over the limit", entries: [file("big", 2 * CHUNK_SIZE, [D(1), D(2)])], limits: { maxFileBytes: CHUNK_SIZE }, refusal: /^entries\[0\]\.size: "big" is 2097152 bytes, over the file limit/ },
  {
    name: "tree over the limit",
    entries: [file("a", CHUNK_SIZE, [D(1)]), file("b", CHUNK_SIZE, [D(2)])],
    limits: { maxTreeBytes: CHUNK_SIZE + 1 },
    refusal: /^entries\[1\]\.size: "b" brings the tree over its limit/,
  },
];

/** The limits a case is checked under. */
export function limitsOf(c: HostileCase): ManifestLimits {
  return { ...DEFAULT_MANIFEST_LIMITS, ...c.limits };
}
