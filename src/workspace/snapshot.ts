import { isUtf8 } from "node:buffer";
import { availableParallelism } from "node:os";
import { lstatSync, readlinkSync, statSync, type Stats } from "node:fs";
import { realpath, stat as statPath } from "node:fs/promises";
import { setImmediate } from "node:timers/promises";
import { InvalidInputError } from "../contract/errors.js";
import type { BlobSource } from "./blob-source.js";
import { hashFileChunks, hashFileChunksSync, readVerifiedChunk, type FileStat, type GitHash, type HashedFile } from "./file-chunks.js";
import { HashThread, type ThreadFile } from "./hash-thread.js";
import {
  buildManifestOfCheckedEntries,
  CHUNK_SIZE,
  chunkLength,
  DEFAULT_MANIFEST_LIMITS,
  pathProblem,
  symlinkTargetProblem,
  type Manifest,
  type ManifestEntry,
  type ManifestFileEntry,
  type ManifestLimits,
} from "./manifest.js";
import { splitManifestReusing, type ManifestPiece } from "./manifest-pieces.js";
import { mapPool } from "./pool.js";
import type { SnapshotMemory } from "./snapshot-memory.js";
import { StatCache, statKey } from "./stat-cache.js";
import { listTree, type IndexedFile, type SkippedPath } from "./tree-listing.js";

/** Options of {@link snapshotDirectory}. */
export interface SnapshotOptions {
  /** Where the stat cache lives between snapshots of this directory; none: every file is hashed. */
  readonly cacheFile?: string;
  /** Limits the tree must keep (defaults: {@link DEFAULT_MANIFEST_LIMITS}). */
  readonly limits?: ManifestLimits;
  /** Files hashed or stat'ed at once (default 8). */
  readonly concurrency?: number;
  /**
   * In a repository, take the tracked files git found unchanged against its
   * index by blob id, without a stat (default: when the stat cache holds
   * about 500 files or more, or the tree has {@link THREAD_MIN_FILES} files
   * or more).
   */
  readonly indexCheck?: boolean;
  /** What a long-lived process keeps between snapshots (see {@link SnapshotMemory}); none: each snapshot starts from the cache file. */
  readonly memory?: SnapshotMemory;
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
  /** The directory snapshotted, as its real path. */
  readonly root: string;
  readonly manifest: Manifest;
  /** The tree id: the digest of {@link index}. */
  readonly treeId: string;
  /** The manifest's index, which lists its {@link pieces} (see manifest-pieces.ts). */
  readonly index: Uint8Array;
  readonly pieces: readonly ManifestPiece[];
  /** Reads any blob of the tree (the manifest's pieces too) from memory or the working tree, as long as its file still holds it. */
  readonly sources: BlobSource;
  /** The HEAD commit, when the directory is the top level of a git repository with one. */
  readonly base: { commit: string } | undefined;
  /**
   * Files whose content git's object store holds (tracked, and unchanged
   * against the index as git saw them while the tree was listed), with their
   * blob ids, by path. Empty outside a repository.
   */
  readonly inGit: ReadonlyMap<string, IndexedFile>;
  /** Paths left out (special files, names a manifest cannot carry, links leaving the tree), with why. */
  readonly skipped: SkippedPath[];
  readonly stats: SnapshotStats;
}

interface ChunkLocation {
  readonly entry: ManifestFileEntry;
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * What one lstat said, kept small: the Stats object (with its four Dates) is
 * dropped at once, so tens of thousands of them die young instead of being
 * carried through the whole snapshot by the garbage collector.
 */
type Observation = { kind: "file"; size: number; executable: boolean; key: string } | { kind: "symlink" } | { kind: "special"; reason: string };

/** Not stat'ed while git listed the tree (its record is by git blob id). */
const NOT_STATED = Symbol("not stated");

/**
 * A file's `record` is its place in the stat cache, found once per file;
 * `chunks` are known already for a clean index entry the cache had.
 */
type Candidate = { path: string; kind: "file"; size: number; executable: boolean; key: string; record: number | undefined; chunks?: readonly string[] } | { path: string; kind: "symlink"; target: string };

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
  const root = await realpath(dir).catch(() => dir);
  if (!(await statPath(root).then((s) => s.isDirectory(), () => false))) throw new InvalidInputError(`${dir} is not a directory`, "dir");
  const memory = options.memory?.of(root, options.cacheFile);
  const listed = listTree(root, limits.maxEntries, memory);
  // Handled at once, so a failed listing is never an unhandled rejection while the cache loads.
  const listingDone = whenSettled(listed);
  const cache = await StatCache.load(options.cacheFile, root, memory);
  const early = await statWhileListing(root, cache.statPaths(), listingDone);
  const listing = await listed;
  const skipped = [...listing.skipped];
  const usable = listing.paths.filter((path) => {
    const problem = pathProblem(path, limits.maxPathBytes);
    if (problem !== undefined) skipped.push({ path, reason: `path ${problem}` });
    return problem === undefined;
  });
  if (usable.length > limits.maxEntries) {
    throw new InvalidInputError(`${usable.length} paths exceed the limit of ${limits.maxEntries} entries; ignore some of them`, dir);
  }

  const inGit = listing.clean ?? new Map<string, IndexedFile>();
  const indexCheck = options.indexCheck ?? (usable.length >= THREAD_MIN_FILES || cacheBytes(options.cacheFile) >= INDEX_CHECK_CACHE_BYTES);
  const clean = indexCheck ? inGit : new Map<string, IndexedFile>();
  const candidates = await inspectAll(root, usable, skipped, cache, early, clean);
  let total = 0;
  for (const c of candidates) {
    if (c.kind !== "file") continue;
    const size = c.size;
    if (size > limits.maxFileBytes) {
      throw new InvalidInputError(`${size} bytes is over the file limit of ${limits.maxFileBytes}; ignore it or raise the limit`, c.path);
    }
    total += size;
  }
  if (total > limits.maxTreeBytes) throw new InvalidInputError(`the tree's ${total} bytes are over the limit of ${limits.maxTreeBytes}`, dir);
  const links = dropEscapingLinks(candidates, skipped, limits.maxPathBytes);

  const entries: ManifestEntry[] = [];
  const fileEntry = (path: string, executable: boolean, size: number, chunks: readonly string[]): void => {
    entries.push({ path, kind: "file", executable, size, chunks });
  };
  /** Files to hash: small ones here, one after another; large ones through the thread pool, a few at once. */
  const small: Array<{ path: string; size: number }> = [];
  const large: Array<{ path: string; size: number }> = [];
  let files = 0;
  for (const c of candidates) {
    if (c.kind !== "file") continue;
    files += 1;
    const chunks = c.chunks ?? cache.lookup(c.path, c.key, c.size, c.record);
    const indexed = c.chunks === undefined && chunks !== undefined ? clean.get(c.path) : undefined;
    // Unchanged since its record by stat, and the blob git's index names: the same bytes, kept by blob id from now on.
    if (indexed !== undefined) cache.recordBlob(c.path, indexed.oid, c.size, chunks!);
    if (chunks !== undefined) fileEntry(c.path, c.executable, c.size, chunks);
    else (c.size <= SYNC_HASH_MAX_BYTES ? small : large).push({ path: c.path, size: c.size });
  }
  let hashedBytes = 0;
  // The file may have changed since it was listed: what was hashed is described.
  const hashed = (path: string, statAtMs: number, { stat, chunks, gitOid }: HashedFile): void => {
    const indexed = clean.get(path);
    // Recorded by blob id only when the bytes read are the blob git's index names.
    if (indexed !== undefined && gitOid === indexed.oid) cache.recordBlob(path, gitOid, stat.size, chunks);
    else cache.record(path, stat, statAtMs, chunks);
    hashedBytes += stat.size;
    fileEntry(path, isExecutable(stat), stat.size, chunks);
  };
  await hashFiles(root, small, large, clean, hashed, concurrency);
  for (const link of links) entries.push({ path: link.path, kind: "symlink", target: link.target });

  // Each entry was checked as it was made: paths by pathProblem, links by dropEscapingLinks, digests by the cache or the hash.
  const manifest = buildManifestOfCheckedEntries(entries, limits);
  const { pieced, runs } = splitManifestReusing(manifest, limits, memory?.runs);
  const { treeId, index, pieces } = pieced;
  if (memory !== undefined) memory.runs = runs;
  await cache.save();
  return {
    root,
    manifest,
    treeId,
    index,
    pieces,
    sources: workingTreeSource(root, manifest, pieces),
    base: listing.base,
    inGit,
    skipped,
    stats: { files, hashedFiles: small.length + large.length, hashedBytes, cachedFiles: cache.hits },
  };
}

/**
 * Hashes the files `small` (paths under `root`) with synchronous calls,
 * letting the event loop go every {@link SYNC_HASH_BATCH}, and the `large`
 * ones through the thread pool, a few at once. Where there are
 * {@link THREAD_MIN_FILES} small files or more and a second core, the large
 * ones join the small at the end of one list, and a {@link HashThread} takes
 * slices of it from there (the large first) while this thread hashes from the
 * start (a large file it reaches before the thread does, synchronously too);
 * either checks a clean file's git blob id as it hashes it. The first file
 * found that cannot be hashed fails the whole.
 */
async function hashFiles(
  root: string,
  small: ReadonlyArray<{ path: string; size: number }>,
  large: ReadonlyArray<{ path: string; size: number }>,
  clean: ReadonlyMap<string, IndexedFile>,
  hashed: (path: string, statAtMs: number, file: HashedFile) => void,
  concurrency: number,
): Promise<void> {
  const thread = small.length >= THREAD_MIN_FILES && availableParallelism() > 1 ? new HashThread(CHUNK_SIZE) : undefined;
  /** Hashed here with synchronous calls, from the start; the thread's from the end. */
  const shared = thread === undefined ? [...small] : [...small, ...large];
  const own = thread === undefined ? large : [];
  /** `shared` from `from` up to `to` is nobody's yet; slices of a thread that failed come back here. */
  let from = 0;
  let to = shared.length;
  const returned: string[] = [];
  let failure: Error | undefined;
  const inThread = new Set<Promise<void>>();
  const handOver = (): void => {
    while (thread !== undefined && thread.queued < 2 && failure === undefined && to - from > THREAD_SLICE) {
      const slice: string[] = [];
      for (let bytes = 0; slice.length < THREAD_SLICE && bytes < THREAD_SLICE_BYTES; ) {
        const file = shared[--to]!;
        slice.push(file.path);
        bytes += file.size;
      }
      const files = slice.map((path): ThreadFile => {
        const git = gitHashOf(clean.get(path));
        return git === undefined ? `${root}/${path}` : [`${root}/${path}`, git];
      });
      const hashing: Promise<void> = thread.hash(files).then(
        (answers) => {
          inThread.delete(hashing);
          for (const [i, answer] of answers.entries()) {
            if (answer instanceof Error) {
              failure ??= answer;
              return;
            }
            hashed(slice[i]!, answer.statAtMs, answer);
          }
          handOver();
        },
        () => {
          inThread.delete(hashing);
          returned.push(...slice);
        },
      );
      inThread.add(hashing);
    }
  };
  let since = 0;
  const scratch = Buffer.allocUnsafe(shared.length > 0 ? CHUNK_SIZE : 0);
  const here = (path: string): void => {
    const at = Date.now();
    const file = hashFileChunksSync(`${root}/${path}`, scratch, gitHashOf(clean.get(path)));
    hashed(path, at, file);
    since += 1 + Math.floor(file.stat.size / 4096);
  };
  try {
    handOver();
    for (;;) {
      const path = from < to ? shared[from++]!.path : returned.pop();
      if (path === undefined) {
        // What the thread still hashes, or gives back if it failed meanwhile.
        if (inThread.size > 0) await Promise.race(inThread);
        else break;
        if (failure !== undefined) break;
        continue;
      }
      here(path);
      if (since >= SYNC_HASH_BATCH) {
        since = 0;
        await setImmediate();
        if (failure !== undefined) break;
        handOver();
      }
    }
    if (failure !== undefined) throw failure;
  } finally {
    await thread?.close();
  }
  await mapPool(own, concurrency, async ({ path }) => {
    const statAtMs = Date.now();
    hashed(path, statAtMs, await hashFileChunks(`${root}/${path}`, gitHashOf(clean.get(path))));
  });
}

/** Small files to hash before a second thread is worth starting (it costs some tens of ms to start). */
const THREAD_MIN_FILES = 2048;
/** Files handed to the hashing thread at once, and their bytes at most (beyond one file): a few ms of its work. */
const THREAD_SLICE = 256;
const THREAD_SLICE_BYTES = 8 * 1024 * 1024;

/**
 * A stat cache at least this large (about 500 files) has the snapshot take
 * git's clean files by blob id: below it, few have a cache record by blob id,
 * and the rest would be hashed twice (their git blob id checked too) on the
 * event loop, for no stat saved. A tree hashed on two threads checks blob ids
 * from its first snapshot on: the check costs a second hash of each clean
 * file, spread over both threads (about a tenth of a cold snapshot), and
 * spares the next snapshot a stat of every file and a rewrite of the cache.
 */
const INDEX_CHECK_CACHE_BYTES = 64 * 1024;

/** The size of the stat cache file; 0 when there is none. */
function cacheBytes(file: string | undefined): number {
  return file === undefined ? 0 : (statSync(file, { throwIfNoEntry: false })?.size ?? 0);
}

/** The hash to check a clean index entry's bytes with (a repository's ids are SHA-1 or SHA-256). */
function gitHashOf(indexed: IndexedFile | undefined): GitHash | undefined {
  if (indexed === undefined) return undefined;
  return indexed.oid.length === 64 ? "sha256" : "sha1";
}

function specialKind(stat: Stats): string {
  if (stat.isFIFO()) return "fifo";
  if (stat.isSocket()) return "socket";
  if (stat.isCharacterDevice()) return "character device";
  if (stat.isBlockDevice()) return "block device";
  if (stat.isDirectory()) return "directory (a submodule or nested repository is not descended)";
  return "not a regular file or symlink";
}

// Stat calls are made synchronously: on a warm tree they are answered from the
// kernel's cache several times faster than through the thread pool; the event
// loop is let go between batches.
const STAT_BATCH = 500;
/** Files up to this size are hashed with synchronous calls (see hashFileChunksSync). */
const SYNC_HASH_MAX_BYTES = 256 * 1024;
/** The event loop is let go after hashing this many files, a file counting once more per 4 KiB it holds (about 2 ms of work). */
const SYNC_HASH_BATCH = 512;

function isExecutable(stat: FileStat): boolean {
  return (stat.mode & 0o100) !== 0;
}

function observe(root: string, path: string): Observation | undefined {
  const stat = lstatSync(`${root}/${path}`, { throwIfNoEntry: false });
  if (stat === undefined) return undefined;
  if (stat.isFile()) return { kind: "file", size: stat.size, executable: isExecutable(stat), key: statKey(stat) };
  if (stat.isSymbolicLink()) return { kind: "symlink" };
  return { kind: "special", reason: specialKind(stat) };
}

/**
 * Stats the files the last snapshot saw while git is still listing the tree,
 * so the two run side by side; stops when the listing is done. A stat taken
 * here is as good as one taken after: each file is described as it was at
 * one moment, which is all a snapshot of a changing tree can promise.
 */
async function statWhileListing(root: string, known: ReadonlyArray<string | undefined>, listed: () => boolean): Promise<Array<Observation | undefined | typeof NOT_STATED>> {
  // By place in `known`, not in a map by path: this is one of the costs that count per file.
  const stats: Array<Observation | undefined | typeof NOT_STATED> = [];
  for (let at = 0; at < known.length && !listed(); at += STAT_BATCH) {
    for (let i = at; i < Math.min(known.length, at + STAT_BATCH); i++) {
      const path = known[i];
      stats.push(path === undefined ? NOT_STATED : observe(root, path));
    }
    await setImmediate();
  }
  return stats;
}

function whenSettled(promise: Promise<unknown>): () => boolean {
  let settled = false;
  const mark = (): void => {
    settled = true;
  };
  promise.then(mark, mark);
  return () => settled;
}

/**
 * Stats `paths`, taking what `early` saw of a path (by its stat cache record)
 * instead of a new stat, and a clean index entry's size and chunks from the
 * cache without any stat.
 */
async function inspectAll(
  root: string,
  paths: readonly string[],
  skipped: SkippedPath[],
  cache: StatCache,
  early: ReadonlyArray<Observation | undefined | typeof NOT_STATED>,
  clean: ReadonlyMap<string, IndexedFile>,
): Promise<Candidate[]> {
  const candidates: Candidate[] = [];
  for (let at = 0; at < paths.length; at += STAT_BATCH) {
    if (at > 0) await setImmediate();
    for (const path of paths.slice(at, at + STAT_BATCH)) {
      const record = cache.recordOf(path);
      const indexed = clean.get(path);
      const known = indexed === undefined ? undefined : cache.lookupBlob(path, indexed.oid, record);
      if (known !== undefined) {
        candidates.push({ path, kind: "file", size: known.size, executable: indexed!.executable, key: "", record, chunks: known.chunks });
        continue;
      }
      const stated = record !== undefined && record < early.length ? early[record] : NOT_STATED;
      const seen = stated === NOT_STATED ? observe(root, path) : stated;
      // Undefined: tracked but deleted in the working tree, so not part of the snapshot.
      if (seen === undefined) continue;
      if (seen.kind === "file") candidates.push({ path, kind: "file", size: seen.size, executable: seen.executable, key: seen.key, record });
      else if (seen.kind === "symlink") {
        const target = readlinkSync(`${root}/${path}`, "buffer");
        if (isUtf8(target)) candidates.push({ path, kind: "symlink", target: target.toString("utf8") });
        else skipped.push({ path, reason: "symlink target is not valid UTF-8" });
      } else skipped.push({ path, reason: seen.reason });
    }
  }
  return candidates;
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

/**
 * Reads a tree's blobs from the directory it was snapshotted from (its
 * manifest's pieces from memory), each checked against its digest: a file
 * changed since reads as absent, never as other bytes, unless `fallback`
 * brings the blob of that file back from elsewhere (git's object store).
 */
export function workingTreeSource(
  root: string,
  manifest: Manifest,
  pieces: readonly ManifestPiece[],
  fallback?: (entry: ManifestFileEntry, digest: string) => Promise<Uint8Array | undefined>,
): BlobSource {
  const held = new Map(pieces.map((p) => [p.digest, p.bytes]));
  // Built on first use: a snapshot whose blobs the executor holds already is never read here.
  let locations: Map<string, ChunkLocation> | undefined;
  const locate = (digest: string): ChunkLocation | undefined => {
    if (locations === undefined) {
      locations = new Map();
      for (const entry of manifest.entries) {
        if (entry.kind !== "file") continue;
        const file = `${root}/${entry.path}`;
        entry.chunks.forEach((d, i) => locations!.set(d, { entry, file, offset: i * CHUNK_SIZE, length: chunkLength(entry.size, i) }));
      }
    }
    return locations.get(digest);
  };
  return {
    has: (digest) => held.has(digest) || locate(digest) !== undefined,
    read: async (digest) => {
      const piece = held.get(digest);
      if (piece !== undefined) return piece;
      const at = locate(digest);
      if (at === undefined) return undefined;
      const bytes = await readVerifiedChunk(at.file, at.offset, at.length, digest);
      return bytes !== undefined || fallback === undefined ? bytes : fallback(at.entry, digest);
    },
  };
}
