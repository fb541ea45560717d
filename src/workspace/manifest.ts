import { createHash } from "node:crypto";
import { posix } from "node:path";
import { z } from "zod";
import { decodeCanonical } from "../../identity/canonical.js";
import { DecodeError } from "../../identity/errors.js";
import { InvalidInputError } from "../contract/errors.js";
import { writeManifestCbor } from "./manifest-cbor.js";

/**
 * Files are cut into fixed-size chunks. Content-defined chunking would let an
 * insertion in the middle of a large file re-use the chunks after it, but
 * source trees change whole small files far more often than they splice big
 * ones, and fixed offsets let a blob source read any chunk straight from the
 * working tree without re-scanning the file.
 */
export const CHUNK_SIZE = 1024 * 1024;

/** A regular file, its content as the digests of its {@link CHUNK_SIZE} chunks (none when empty). */
export interface ManifestFileEntry {
  readonly path: string;
  readonly kind: "file";
  readonly executable: boolean;
  readonly size: number;
  readonly chunks: readonly string[];
}

/** A symbolic link, recorded as its target text; it is never followed. */
export interface ManifestSymlinkEntry {
  readonly path: string;
  readonly kind: "symlink";
  readonly target: string;
}

/** One path of a tree. Directories are implied by the paths under them. */
export type ManifestEntry = ManifestFileEntry | ManifestSymlinkEntry;

/**
 * A content-addressed tree: entries sorted bytewise (UTF-8) by POSIX relative
 * path, each path at most once. Its id is the SHA-256 of its canonical encoding.
 */
export interface Manifest {
  readonly version: 1;
  readonly entries: readonly ManifestEntry[];
}

/** Bounds a manifest must respect to be accepted. */
export interface ManifestLimits {
  /** Most entries in one tree. */
  readonly maxEntries: number;
  /** Longest path or symlink target, in UTF-8 bytes. */
  readonly maxPathBytes: number;
  /** Largest single file, in bytes. */
  readonly maxFileBytes: number;
  /** Largest sum of file sizes, in bytes. */
  readonly maxTreeBytes: number;
  /** Largest encoded manifest, in bytes. */
  readonly maxManifestBytes: number;
}

/** Limits used when none are given. */
export const DEFAULT_MANIFEST_LIMITS: ManifestLimits = {
  maxEntries: 100_000,
  maxPathBytes: 4096,
  maxFileBytes: 1024 ** 3,
  maxTreeBytes: 4 * 1024 ** 3,
  maxManifestBytes: 64 * 1024 ** 2,
};

// The OS gives up on symlink chains after 40 hops; so does the containment check.
const MAX_SYMLINK_HOPS = 40;

/** Bytes of chunk `index` of a file of `size` bytes: {@link CHUNK_SIZE}, less for the last. */
export function chunkLength(size: number, index: number): number {
  return Math.min(CHUNK_SIZE, size - index * CHUNK_SIZE);
}

/** Lowercase hex SHA-256 of `bytes`: the name of a blob. */
export function blobDigest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// Strings without code units from U+D800 up compare the same by UTF-16 code
// units as by UTF-8 bytes; only surrogates against U+E000..U+FFFF differ.
const UTF16_ORDER_DIFFERS = /[\uD800-\uFFFF]/;

/** Bytewise order of the UTF-8 encodings, which is the order entries are kept in. */
export function comparePaths(a: string, b: string): number {
  if (UTF16_ORDER_DIFFERS.test(a) || UTF16_ORDER_DIFFERS.test(b)) return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
  return a < b ? -1 : a > b ? 1 : 0;
}

// Accepts only paths the segment-by-segment rules below accept too (it also
// sends ".gıt" and the like to them), in one native pass for the common case.
const PLAINLY_SAFE_SEGMENT = String.raw`(?!\.\.?(?:/|$))(?!\.git(?:/|$))[^/\\\0]+`;
const PLAINLY_SAFE_PATH = new RegExp(`^${PLAINLY_SAFE_SEGMENT}(?:/${PLAINLY_SAFE_SEGMENT})*$`, "i");

/**
 * Why `path` cannot name an entry, or undefined when it can: it must be a
 * relative POSIX path of non-empty segments, none `.`, `..` or `.git` (the
 * workspace's git metadata belongs to whoever runs it), without backslashes
 * or NUL, and at most `maxPathBytes` long.
 */
export function pathProblem(path: string, maxPathBytes = DEFAULT_MANIFEST_LIMITS.maxPathBytes): string | undefined {
  if (path === "") return "is empty";
  // A UTF-16 unit is at most 3 UTF-8 bytes: most paths need no count.
  if (path.length * 3 > maxPathBytes && Buffer.byteLength(path, "utf8") > maxPathBytes) return `is longer than ${maxPathBytes} bytes`;
  if (PLAINLY_SAFE_PATH.test(path)) return undefined;
  if (path.startsWith("/")) return "is absolute";
  if (path.includes("\0")) return "contains NUL";
  if (path.includes("\\")) return "contains a backslash";
  for (const segment of path.split("/")) {
    if (segment === "") return "has an empty segment";
    if (segment === "." || segment === "..") return `has a "${segment}" segment`;
    if (segment.toLowerCase() === ".git") return "has a .git segment";
  }
  return undefined;
}

/** A blob digest or tree id: lowercase hex SHA-256. */
export const DIGEST_PATTERN = /^[0-9a-f]{64}$/;
/**
 * Whether `text` is a lowercase hex SHA-256 digest: {@link DIGEST_PATTERN}
 * by hand, several times faster than the regular expression, which counts
 * once per file in every snapshot.
 */
export function isDigest(text: string): boolean {
  if (text.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

const digestSchema = z.string().regex(DIGEST_PATTERN, "is not a lowercase hex SHA-256 digest");
const entrySchema = z.discriminatedUnion("kind", [
  z.strictObject({
    path: z.string(),
    kind: z.literal("file"),
    executable: z.boolean(),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    chunks: z.array(digestSchema),
  }),
  z.strictObject({ path: z.string(), kind: z.literal("symlink"), target: z.string() }),
]);
const manifestSchema = z.strictObject({ version: z.literal(1), entries: z.array(entrySchema) });

/**
 * Manifests built or decoded here: deep-frozen, so the check they passed stays
 * true, and mapped to the limits it was made against. Encoding or
 * materialising one of them does not walk its entries again.
 */
const checked = new WeakMap<Manifest, ManifestLimits>();

function sealChecked(manifest: Manifest, limits: ManifestLimits): Manifest {
  for (const entry of manifest.entries) {
    if (entry.kind === "file") Object.freeze(entry.chunks);
    Object.freeze(entry);
  }
  Object.freeze(manifest.entries);
  checked.set(Object.freeze(manifest), limits);
  return manifest;
}

/** A path as errors show it: quoted, escaped, and cut short when long. */
function quote(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}...` : text);
}

function entryField(index: number, rest = ""): string {
  return `entries[${index}]${rest}`;
}

/**
 * Checks every rule a manifest must keep and returns it unchanged; the first
 * broken rule is refused as an {@link InvalidInputError} naming the entry.
 * Builders and decoders share it, so nothing is encoded that a peer would refuse.
 * With `entriesChecked` the caller vouches for each entry on its own (its
 * path passed {@link pathProblem}, its digests are well formed, its link
 * target passed {@link symlinkTargetProblem} against the same links), and only
 * the rules across entries and the limits are checked here.
 */
export function validateManifest(manifest: Manifest, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS, entriesChecked = false): Manifest {
  if (checked.get(manifest) === limits) return manifest;
  const { entries } = manifest;
  if (manifest.version !== 1) throw new InvalidInputError(`unknown manifest version ${String(manifest.version)}`, "version");
  if (entries.length > limits.maxEntries) {
    throw new InvalidInputError(`${entries.length} entries exceed the limit of ${limits.maxEntries}`, "entries");
  }
  const kinds = new Map<string, ManifestEntry["kind"]>();
  const symlinks = new Map<string, string>();
  let previous: string | undefined;
  let previousPlain = true;
  let total = 0;
  // Indexed, and the field named only when refused: this runs for every entry of every snapshot.
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const problem = entriesChecked ? undefined : pathProblem(entry.path, limits.maxPathBytes);
    if (problem !== undefined) throw new InvalidInputError(`${quote(entry.path)} ${problem}`, entryField(i, ".path"));
    const plain = !UTF16_ORDER_DIFFERS.test(entry.path);
    if (previous !== undefined) {
      const order = plain && previousPlain ? (previous < entry.path ? -1 : previous > entry.path ? 1 : 0) : comparePaths(previous, entry.path);
      if (order === 0) throw new InvalidInputError(`${quote(entry.path)} appears twice`, entryField(i, ".path"));
      if (order > 0) throw new InvalidInputError(`${quote(entry.path)} is out of order (entries are sorted bytewise by path)`, entryField(i, ".path"));
    }
    previous = entry.path;
    previousPlain = plain;
    kinds.set(entry.path, entry.kind);
    if (entry.kind === "symlink") {
      symlinks.set(entry.path, entry.target);
      continue;
    }
    if (!Number.isSafeInteger(entry.size) || entry.size < 0) {
      throw new InvalidInputError(`${quote(entry.path)} has size ${entry.size}, not a byte count`, entryField(i, ".size"));
    }
    if (entry.size > limits.maxFileBytes) {
      throw new InvalidInputError(`${quote(entry.path)} is ${entry.size} bytes, over the file limit of ${limits.maxFileBytes}`, entryField(i, ".size"));
    }
    const expected = Math.ceil(entry.size / CHUNK_SIZE);
    if (entry.chunks.length !== expected) {
      throw new InvalidInputError(`${quote(entry.path)} has ${entry.chunks.length} chunks for ${entry.size} bytes (expected ${expected})`, entryField(i, ".chunks"));
    }
    let bad = -1;
    for (let c = 0; c < entry.chunks.length && bad < 0 && !entriesChecked; c++) if (!isDigest(entry.chunks[c]!)) bad = c;
    if (bad >= 0) throw new InvalidInputError(`${quote(entry.path)} has a chunk that is not a lowercase hex SHA-256 digest`, entryField(i, `.chunks[${bad}]`));
    total += entry.size;
    if (total > limits.maxTreeBytes) {
      throw new InvalidInputError(`${quote(entry.path)} brings the tree over its limit of ${limits.maxTreeBytes} bytes`, entryField(i, ".size"));
    }
  }
  // Entries in one directory have the same ancestors: checked once per directory met.
  let checkedDirectory: string | undefined;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const slash = entry.path.lastIndexOf("/");
    const directory = slash < 0 ? "" : entry.path.slice(0, slash);
    if (directory !== checkedDirectory) {
      for (let at = entry.path.indexOf("/"); at >= 0; at = entry.path.indexOf("/", at + 1)) {
        const ancestor = entry.path.slice(0, at);
        const kind = kinds.get(ancestor);
        if (kind !== undefined) {
          throw new InvalidInputError(`${quote(entry.path)} goes through the ${kind} ${quote(ancestor)}`, entryField(i, ".path"));
        }
      }
      checkedDirectory = directory;
    }
    if (entry.kind === "symlink" && !entriesChecked) {
      const problem = symlinkTargetProblem(entry.path, entry.target, symlinks, limits.maxPathBytes);
      if (problem !== undefined) throw new InvalidInputError(`${quote(entry.path)} -> ${quote(entry.target)} ${problem}`, entryField(i, ".target"));
    }
  }
  return manifest;
}

/**
 * Why the symlink at `path` could reach outside the tree (or into git
 * metadata), or undefined when it cannot; `symlinks` maps every link of the
 * tree to its target. The walk resolves `..` the way the OS does: after
 * following any link of the tree met on the way, not lexically, so `a/s/..`
 * with `a/s -> ..` is seen to climb out.
 */
export function symlinkTargetProblem(path: string, target: string, symlinks: ReadonlyMap<string, string>, maxPathBytes = DEFAULT_MANIFEST_LIMITS.maxPathBytes): string | undefined {
  if (target === "") return "has an empty target";
  if (Buffer.byteLength(target, "utf8") > maxPathBytes) return `has a target longer than ${maxPathBytes} bytes`;
  if (target.startsWith("/")) return "points to an absolute path";
  if (target.includes("\0") || target.includes("\\")) return "has a target with NUL or a backslash";
  const stack = posix.dirname(path) === "." ? [] : posix.dirname(path).split("/");
  const pending = target.split("/").reverse();
  let hops = 0;
  while (pending.length > 0) {
    const segment = pending.pop()!;
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (stack.length === 0) return "points outside the tree";
      stack.pop();
      continue;
    }
    if (segment.toLowerCase() === ".git") return "points into .git";
    stack.push(segment);
    const via = symlinks.get(stack.join("/"));
    // The last segment may itself be a link: that link is checked on its own.
    if (via !== undefined && pending.length > 0) {
      hops += 1;
      if (hops > MAX_SYMLINK_HOPS) return `passes through more than ${MAX_SYMLINK_HOPS} symlinks`;
      if (via.startsWith("/")) return "points outside the tree through an absolute symlink";
      stack.pop();
      pending.push(...via.split("/").reverse());
    }
  }
  return undefined;
}

/** Sorts `entries` into a manifest and validates it; the input order does not matter. */
export function buildManifest(entries: readonly ManifestEntry[], limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): Manifest {
  return sortAndSeal(entries.map(canonicalEntry), limits, false);
}

/**
 * {@link buildManifest} for entries made by the caller with exactly the
 * format's fields, each already checked on its own (see `entriesChecked` of
 * {@link validateManifest}): a snapshot's. They are sorted in place and
 * frozen, not copied, and only the rules across entries are checked again.
 */
export function buildManifestOfCheckedEntries(entries: ManifestEntry[], limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): Manifest {
  return sortAndSeal(entries, limits, true);
}

function sortAndSeal(entries: ManifestEntry[], limits: ManifestLimits, entriesChecked: boolean): Manifest {
  // Whether the paths may be compared as plain strings is found once, not per comparison.
  if (entries.some((entry) => UTF16_ORDER_DIFFERS.test(entry.path))) entries.sort((a, b) => comparePaths(a.path, b.path));
  else entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return sealChecked(validateManifest({ version: 1, entries }, limits, entriesChecked), limits);
}

// Only the fields of the format reach the bytes, whatever else the object carries.
function canonicalEntry(entry: ManifestEntry): ManifestEntry {
  return entry.kind === "file"
    ? { path: entry.path, kind: "file", executable: entry.executable, size: entry.size, chunks: [...entry.chunks] }
    : { path: entry.path, kind: "symlink", target: entry.target };
}

/** The canonical CBOR of a valid manifest; the same tree always gives the same bytes. */
export function encodeManifest(manifest: Manifest, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): Uint8Array {
  validateManifest(manifest, limits);
  return writeManifestCbor(manifest);
}

/**
 * Parses a manifest from outside. Only the canonical encoding of a valid tree
 * is accepted, so bytes and tree id correspond one to one; anything else is
 * refused as an {@link InvalidInputError} naming the entry and the rule.
 */
export function decodeManifest(bytes: Uint8Array, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): Manifest {
  return sealValidManifest(parseManifestShape(bytes, limits), limits);
}

/**
 * The canonical encoding `bytes` read as a manifest's shape (fields and types
 * only, none of {@link validateManifest}'s rules across entries, which a part
 * of a tree cannot answer alone); refusals name the field, prefixed by `at`.
 */
export function parseManifestShape(bytes: Uint8Array, limits: ManifestLimits, at = ""): Manifest {
  const where = (field: string): string => (at === "" ? field : `${at}.${field}`);
  let value: unknown;
  try {
    value = decodeCanonical(bytes, { maxBytes: limits.maxManifestBytes, maxDepth: 4 });
  } catch (err) {
    if (err instanceof DecodeError) throw new InvalidInputError(`not a canonical manifest encoding: ${err.message}`, at === "" ? "manifest" : at);
    throw err;
  }
  const raw = value as { entries?: unknown } | null;
  // Counted before the schema walks them, so a flood of entries costs nothing.
  if (raw !== null && typeof raw === "object" && Array.isArray(raw.entries) && raw.entries.length > limits.maxEntries) {
    throw new InvalidInputError(`${raw.entries.length} entries exceed the limit of ${limits.maxEntries}`, where("entries"));
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
    const index = typeof issue.path[1] === "number" ? issue.path[1] : undefined;
    const entry = index === undefined ? undefined : (raw?.entries as { path?: unknown }[] | undefined)?.[index];
    const named = typeof entry?.path === "string" ? ` (entry ${quote(entry.path)})` : "";
    const detail = issue.code === "unrecognized_keys" ? `unknown field(s): ${issue.keys.join(", ")}` : issue.message;
    throw new InvalidInputError(`${detail}${named}`, field === "" ? (at === "" ? "manifest" : at) : where(field));
  }
  return parsed.data;
}

/** Validates a manifest parsed or joined here and seals it, so later checks against the same limits are free. */
export function sealValidManifest(manifest: Manifest, limits: ManifestLimits): Manifest {
  return sealChecked(validateManifest(manifest, limits), limits);
}

/** Every chunk digest the tree's files need, each once. */
export function blobsOf(manifest: Manifest): Set<string> {
  const digests = new Set<string>();
  for (const entry of manifest.entries) if (entry.kind === "file") for (const digest of entry.chunks) digests.add(digest);
  return digests;
}

/** Sum of the tree's file sizes, in bytes. */
export function totalSize(manifest: Manifest): number {
  let total = 0;
  for (const entry of manifest.entries) if (entry.kind === "file") total += entry.size;
  return total;
}
