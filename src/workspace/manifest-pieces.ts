import { z } from "zod";
import { decodeCanonical, encodeCanonical } from "../../identity/canonical.js";
import { DecodeError } from "../../identity/errors.js";
import { InvalidInputError } from "../contract/errors.js";
import { blobDigest, CHUNK_SIZE, DEFAULT_MANIFEST_LIMITS, DIGEST_PATTERN, parseManifestShape, sealValidManifest, validateManifest, type Manifest, type ManifestEntry, type ManifestLimits } from "./manifest.js";
import { EntryWriter, wrapEntriesCbor } from "./manifest-cbor.js";

/*
 * A tree travels as an index and pieces. A manifest of 20k files is a few
 * MB, and sent whole it would dwarf what changed between two sends of the
 * same tree; so its entries are cut into runs, each encoded as the manifest
 * of its own entries (a piece, stored and fetched like any blob), and the
 * tree id is the digest of the index that lists the pieces' digests in order.
 *
 * Cuts are content-defined: after an entry whose path hashes to a multiple of
 * {@link CUT_EVERY} (so a piece holds about that many entries, about 16 KB
 * at ~125 bytes an entry), or once a piece reaches {@link PIECE_TARGET_BYTES}.
 * A changed file changes its entry's digests, not its path, so it changes the
 * one piece that holds it; an added or removed file changes its piece and at
 * most merges or splits it with a neighbour. Per-directory manifests (a
 * Merkle tree of directories) would do as well for a change deep in a tree,
 * but cost a piece per directory, and a flat tree of 20k files would be one
 * piece again; runs cut by path hash have the same size whatever the shape.
 * Cutting on a hash of the path alone keeps the cut points where they were
 * when a file's content changes; the hash is not a security boundary (a
 * hostile name can only make a piece longer, up to the byte bound).
 *
 * The verification chain: the index hashes to the tree id; each piece hashes
 * to the digest the index lists; the joined entries pass every rule of
 * {@link validateManifest}; and the pieces are cut exactly where the rule
 * above cuts that manifest, so a tree has one id and one set of pieces.
 */

/** About one entry in this many ends a piece. */
export const CUT_EVERY = 128;
/** A piece whose entries reach this many bytes ends there, whatever the paths. */
export const PIECE_TARGET_BYTES = 48 * 1024;
/** Largest piece: a blob (one piece holds at least one entry, which can be as long as its path and chunk digests). */
export const MAX_PIECE_BYTES = CHUNK_SIZE;

/** One piece of a manifest: the canonical manifest of a run of its entries, and that encoding's digest. */
export interface ManifestPiece {
  readonly digest: string;
  readonly bytes: Uint8Array;
}

/** A manifest as it is stored and sent: its index (whose digest is the tree id) and its pieces in order. */
export interface PiecedManifest {
  readonly treeId: string;
  readonly index: Uint8Array;
  readonly pieces: readonly ManifestPiece[];
}

const INDEX_VERSION = 1;
const indexSchema = z.strictObject({
  version: z.literal(INDEX_VERSION),
  pieces: z.array(z.string().regex(DIGEST_PATTERN, "is not a lowercase hex SHA-256 digest")),
});

/**
 * FNV-1a over the path's UTF-8 bytes, then murmur3's finaliser so the low
 * bits depend on every byte: the same path cuts the same way everywhere.
 */
export function pathCutHash(path: string): number {
  let h = 0x811c9dc5;
  // Only code units below 0x80 are their own UTF-8 byte.
  if (/^[\0-\x7f]*$/.test(path)) {
    for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  } else {
    for (const byte of Buffer.from(path, "utf8")) h = Math.imul(h ^ byte, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Cuts a valid manifest into its pieces and index; the same manifest always gives the same bytes. */
export function splitManifest(manifest: Manifest, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): PiecedManifest {
  return splitManifestReusing(manifest, limits, undefined).pieced;
}

/**
 * A split manifest's pieces with the runs of its entries they hold, for the
 * next {@link splitManifestReusing} of the same directory.
 */
export interface PieceRuns {
  readonly version: number;
  readonly entries: readonly ManifestEntry[];
  readonly runs: readonly PieceRun[];
}

interface PieceRun {
  /** Where the piece's entries start in {@link PieceRuns.entries}, and how many it holds. */
  readonly first: number;
  readonly count: number;
  /** Cut after its last entry by that entry's path or the piece's size, not only because the tree ended there. */
  readonly cutByContent: boolean;
  readonly piece: ManifestPiece;
}

/**
 * {@link splitManifest}, taking from `previous` (what splitting an earlier
 * manifest gave) each piece whose run of entries is found again unchanged
 * where a piece starts, instead of encoding and hashing it again: a tree
 * snapshotted again after a few changes costs what changed. The cut rule
 * decides a piece from its own entries alone, except that the tree's last
 * entry always ends one, so a run that ended only there is taken only where
 * it ends the tree again. The bytes are those splitManifest gives.
 */
export function splitManifestReusing(manifest: Manifest, limits: ManifestLimits, previous: PieceRuns | undefined): { pieced: PiecedManifest; runs: PieceRuns } {
  const { entries } = validateManifest(manifest, limits);
  const before = new Map<string, PieceRun>();
  if (previous !== undefined && previous.version === manifest.version) for (const run of previous.runs) before.set(previous.entries[run.first]!.path, run);
  const reusable = (run: PieceRun, at: number): boolean => {
    const end = at + run.count;
    if (end > entries.length || !(run.cutByContent || end === entries.length)) return false;
    for (let k = 0; k < run.count; k++) if (!sameEntry(previous!.entries[run.first + k]!, entries[at + k]!)) return false;
    return true;
  };
  const pieces: ManifestPiece[] = [];
  const runs: PieceRun[] = [];
  const out = new EntryWriter(PIECE_TARGET_BYTES * 2);
  for (let i = 0; i < entries.length; ) {
    const first = i;
    const known = before.get(entries[i]!.path);
    if (known !== undefined && reusable(known, i)) {
      pieces.push(known.piece);
      runs.push({ ...known, first });
      i += known.count;
      continue;
    }
    out.clear();
    let cutByContent = false;
    while (!cutByContent && i < entries.length) {
      const end = out.entry(entries[i]!);
      cutByContent = end >= PIECE_TARGET_BYTES || pathCutHash(entries[i]!.path) % CUT_EVERY === 0;
      i += 1;
    }
    const bytes = wrapEntriesCbor(i - first, out.view(), manifest.version);
    if (bytes.byteLength > MAX_PIECE_BYTES) {
      throw new InvalidInputError(`${JSON.stringify(entries[i - 1]!.path)} makes a manifest piece of ${bytes.byteLength} bytes, over ${MAX_PIECE_BYTES}`, `entries[${i - 1}]`);
    }
    const piece = { digest: blobDigest(bytes), bytes };
    pieces.push(piece);
    runs.push({ first, count: i - first, cutByContent, piece });
  }
  const index = encodeCanonical({ version: INDEX_VERSION, pieces: pieces.map((p) => p.digest) });
  return { pieced: { treeId: blobDigest(index), index, pieces }, runs: { version: manifest.version, entries, runs } };
}

/** Whether two entries encode to the same bytes. */
function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  if (a === b) return true;
  if (a.path !== b.path) return false;
  if (a.kind === "symlink") return b.kind === "symlink" && a.target === b.target;
  if (b.kind !== "file") return false;
  if (a.size !== b.size || a.executable !== b.executable || a.chunks.length !== b.chunks.length) return false;
  for (let k = 0; k < a.chunks.length; k++) if (a.chunks[k] !== b.chunks[k]) return false;
  return true;
}

/**
 * The piece digests a tree's index lists, in order, once the index is known
 * to hash to `treeId`. Refused as an {@link InvalidInputError} when it does
 * not, or is not a canonical index within `limits`.
 */
export function decodeManifestIndex(treeId: string, index: Uint8Array, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): string[] {
  if (blobDigest(index) !== treeId) throw new InvalidInputError(`the index does not hash to tree id ${treeId}`, "index");
  let value: unknown;
  try {
    value = decodeCanonical(index, { maxBytes: limits.maxManifestBytes, maxDepth: 2 });
  } catch (err) {
    if (err instanceof DecodeError) throw new InvalidInputError(`not a canonical manifest index: ${err.message}`, "index");
    throw err;
  }
  const raw = value as { pieces?: unknown } | null;
  // Every piece holds an entry at least: more pieces than entries allowed is refused before the schema walks them.
  if (raw !== null && typeof raw === "object" && Array.isArray(raw.pieces) && raw.pieces.length > limits.maxEntries) {
    throw new InvalidInputError(`${raw.pieces.length} pieces exceed the limit of ${limits.maxEntries} entries`, "index.pieces");
  }
  const parsed = indexSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    const detail = issue.code === "unrecognized_keys" ? `unknown field(s): ${issue.keys.join(", ")}` : issue.message;
    throw new InvalidInputError(detail, `index${field}`);
  }
  return parsed.data.pieces;
}

/**
 * The pieces `digests` lists (undefined where `read` has none), read one at a
 * time and refused with `tooLarge(k)` at the first that brings them over
 * `maxBytes`: an index names its pieces, not their sizes, and may name one
 * of a megabyte 100,000 times. Answers them and the bytes they come to.
 */
export async function readPiecesWithin(
  digests: readonly string[],
  read: (digest: string, k: number) => Promise<Uint8Array | undefined>,
  maxBytes: number,
  tooLarge: (k: number) => Error,
): Promise<{ pieces: Array<Uint8Array | undefined>; bytes: number }> {
  const pieces: Array<Uint8Array | undefined> = [];
  let bytes = 0;
  for (const [k, digest] of digests.entries()) {
    const piece = await read(digest, k);
    bytes += piece?.byteLength ?? 0;
    if (bytes > maxBytes) throw tooLarge(k);
    pieces.push(piece);
  }
  return { pieces, bytes };
}

/**
 * The manifest of tree `treeId` from its index and its pieces (in the index's
 * order), checked link by link: see the chain above. A refusal is an
 * {@link InvalidInputError} naming the piece, or the entry by its place in
 * the whole tree.
 */
export function joinManifest(treeId: string, index: Uint8Array, pieces: readonly Uint8Array[], limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): Manifest {
  const digests = decodeManifestIndex(treeId, index, limits);
  if (pieces.length !== digests.length) throw new InvalidInputError(`${pieces.length} pieces given for an index of ${digests.length}`, "index.pieces");
  const entries: ManifestEntry[] = [];
  let total = 0;
  for (const [k, bytes] of pieces.entries()) {
    const at = `pieces[${k}]`;
    total += bytes.byteLength;
    if (total > limits.maxManifestBytes) throw new InvalidInputError(`the pieces exceed the manifest limit of ${limits.maxManifestBytes} bytes`, at);
    if (blobDigest(bytes) !== digests[k]) throw new InvalidInputError(`the piece does not hash to ${digests[k]}`, at);
    const piece = parseManifestShape(bytes, limits, at);
    if (piece.entries.length === 0) throw new InvalidInputError("the piece holds no entry", at);
    const count = entries.length + piece.entries.length;
    if (count > limits.maxEntries) throw new InvalidInputError(`${count} entries exceed the limit of ${limits.maxEntries} (counted up to ${at})`, "entries");
    for (const entry of piece.entries) entries.push(entry);
  }
  const manifest = sealValidManifest({ version: 1, entries }, limits);
  const again = splitManifest(manifest, limits).pieces;
  const differs = again.findIndex((p, k) => p.digest !== digests[k]);
  if (differs >= 0 || again.length !== digests.length) {
    const k = differs >= 0 ? differs : Math.min(again.length, digests.length);
    throw new InvalidInputError("the manifest is not cut into pieces where its format cuts it", `pieces[${k}]`);
  }
  return manifest;
}
