import type { BigIntStats } from "node:fs";
import { lstat, readlink, realpath } from "node:fs/promises";
import { join } from "node:path";
import { InvalidInputError } from "../contract/errors.js";
import type { BlobSource } from "./blob-source.js";
import { hashFileChunks, readVerifiedChunk } from "./file-chunks.js";
import {
  buildManifest,
  CHUNK_SIZE,
  DEFAULT_MANIFEST_LIMITS,
  encodeManifest,
  pathProblem,
  symlinkTargetProblem,
  treeIdOf,
  type Manifest,
  type ManifestEntry,
  type ManifestLimits,
} from "./manifest.js";
import { mapPool } from "./pool.js";
import { nowNs, StatCache } from "./stat-cache.js";
import { listTree, type SkippedPath } from "./tree-listing.js";

/** Options of {@link snapshotDirectory}. */
export interface SnapshotOptions {
  /** Where the stat cache lives between snapshots of this directory; none: every file is hashed. */
  readonly cacheFile?: string;
  /** Limits the tree must keep (defaults: {@link DEFAULT_MANIFEST_LIMITS}). */
  readonly limits?: ManifestLimits;
  /** Files hashed or stat'ed at once (default 8). */
  readonly concurrency?: number;
}

/** What a snapshot cost: how many files were hashed and how many came from the stat cache. */
export interface SnapshotStats {
  readonly files: number;
  readonly hashedFiles: number;
  readonly hashedBytes: number;
  readonly cachedFiles: number;
}

/** A directory captured as a content-addressed tree. */
export interface Snapshot {
  readonly manifest: Manifest;
  /** The manifest's canonical encoding; {@link treeId} is its digest. */
  readonly bytes: Uint8Array;
  readonly treeId: string;
  /** Reads any blob of the tree from the working tree, as long as its file still holds it. */
  readonly sources: BlobSource;
  /** The HEAD commit, when the directory is the top level of a git repository with one. */
  readonly base: { commit: string } | undefined;
  /** Paths left out (special files, names a manifest cannot carry, links leaving the tree), with why. */
  readonly skipped: SkippedPath[];
  readonly stats: SnapshotStats;
}

interface ChunkLocation {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

type Candidate = { path: string; stat: BigIntStats; kind: "file" } | { path: string; kind: "symlink"; target: string };

/**
 * Captures `dir` as a manifest. In a git work tree that is the working tree
 * minus ignored files (HEAD plus staged, unstaged and untracked changes);
 * elsewhere every file minus what `.coderclawignore` excludes. Regular files
 * and symlinks are taken (links recorded, never followed); anything else, and
 * any link whose target could leave the tree, is listed in `skipped`. A file
 * over the size limit, or a tree over its limits, is refused naming the path.
 */
export async function snapshotDirectory(dir: string, options: SnapshotOptions = {}): Promise<Snapshot> {
  const limits = options.limits ?? DEFAULT_MANIFEST_LIMITS;
  const concurrency = options.concurrency ?? 8;
  const root = await realpath(dir);
  const [listing, cache] = await Promise.all([listTree(root), StatCache.load(options.cacheFile, root)]);
  const skipped = [...listing.skipped];
  const usable = listing.paths.filter((path) => {
    const problem = pathProblem(path, limits.maxPathBytes);
    if (problem !== undefined) skipped.push({ path, reason: `path ${problem}` });
    return problem === undefined;
  });
  if (usable.length > limits.maxEntries) {
    throw new InvalidInputError(`${usable.length} paths exceed the limit of ${limits.maxEntries} entries; ignore some of them`, dir);
  }

  const candidates = (await mapPool(usable, concurrency * 4, (path) => inspect(root, path, skipped))).filter((c): c is Candidate => c !== undefined);
  let total = 0;
  for (const c of candidates) {
    if (c.kind !== "file") continue;
    const size = Number(c.stat.size);
    if (size > limits.maxFileBytes) {
      throw new InvalidInputError(`${size} bytes is over the file limit of ${limits.maxFileBytes}; ignore it or raise the limit`, c.path);
    }
    total += size;
  }
  if (total > limits.maxTreeBytes) throw new InvalidInputError(`the tree's ${total} bytes are over the limit of ${limits.maxTreeBytes}`, dir);
  const links = dropEscapingLinks(candidates, skipped, limits.maxPathBytes);

  const locations = new Map<string, ChunkLocation>();
  let hashedFiles = 0;
  let hashedBytes = 0;
  const files = candidates.filter((c): c is Extract<Candidate, { kind: "file" }> => c.kind === "file");
  const entries: ManifestEntry[] = await mapPool(files, concurrency, async (c) => {
    const file = join(root, c.path);
    let stat = c.stat;
    let chunks = cache.lookup(c.path, stat);
    if (chunks === undefined) {
      const statAtNs = nowNs();
      const hashed = await hashFileChunks(file);
      // The file may have changed since it was listed: describe what was hashed.
      stat = hashed.stat;
      chunks = hashed.chunks;
      cache.record(c.path, hashed.stat, statAtNs, chunks);
      hashedFiles += 1;
      hashedBytes += Number(hashed.stat.size);
    }
    const size = Number(stat.size);
    chunks.forEach((digest, i) => {
      locations.set(digest, { file, offset: i * CHUNK_SIZE, length: Math.min(CHUNK_SIZE, size - i * CHUNK_SIZE) });
    });
    return { path: c.path, kind: "file", executable: (Number(stat.mode) & 0o100) !== 0, size, chunks };
  });
  for (const link of links) entries.push({ path: link.path, kind: "symlink", target: link.target });

  const manifest = buildManifest(entries, limits);
  const bytes = encodeManifest(manifest, limits);
  await cache.save();
  return {
    manifest,
    bytes,
    treeId: treeIdOf(bytes),
    sources: workingTreeSource(locations),
    base: listing.base,
    skipped,
    stats: { files: files.length, hashedFiles, hashedBytes, cachedFiles: cache.hits },
  };
}

function specialKind(stat: BigIntStats): string {
  if (stat.isFIFO()) return "fifo";
  if (stat.isSocket()) return "socket";
  if (stat.isCharacterDevice()) return "character device";
  if (stat.isBlockDevice()) return "block device";
  if (stat.isDirectory()) return "directory (a submodule or nested repository is not descended)";
  return "not a regular file or symlink";
}

async function inspect(root: string, path: string, skipped: SkippedPath[]): Promise<Candidate | undefined> {
  let stat: BigIntStats;
  try {
    stat = await lstat(join(root, path), { bigint: true });
  } catch (err) {
    // Tracked but deleted in the working tree: not part of the snapshot.
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  if (stat.isFile()) return { path, stat, kind: "file" };
  if (stat.isSymbolicLink()) return { path, kind: "symlink", target: await readlink(join(root, path), "utf8") };
  skipped.push({ path, reason: specialKind(stat) });
  return undefined;
}

/** The links whose targets stay inside the tree; the others go to `skipped`, until none is left that escapes. */
function dropEscapingLinks(candidates: Candidate[], skipped: SkippedPath[], maxPathBytes: number): { path: string; target: string }[] {
  let links = candidates.filter((c): c is Extract<Candidate, { kind: "symlink" }> => c.kind === "symlink");
  for (;;) {
    const targets = new Map(links.map((l) => [l.path, l.target]));
    const kept = links.filter((l) => {
      const problem = symlinkTargetProblem(l.path, l.target, targets, maxPathBytes);
      if (problem !== undefined) skipped.push({ path: l.path, reason: `symlink to ${JSON.stringify(l.target)} ${problem}` });
      return problem === undefined;
    });
    if (kept.length === links.length) return kept;
    links = kept;
  }
}

function workingTreeSource(locations: ReadonlyMap<string, ChunkLocation>): BlobSource {
  return {
    has: (digest) => locations.has(digest),
    read: async (digest) => {
      const at = locations.get(digest);
      return at === undefined ? undefined : readVerifiedChunk(at.file, at.offset, at.length, digest);
    },
  };
}
