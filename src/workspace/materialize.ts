import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { lstatSync, mkdirSync, symlinkSync, type Stats } from "node:fs";
import { lstat, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { CoderClawError, InvalidInputError } from "../contract/errors.js";
import { FileWriter, MAX_COPY_BYTES, SOURCE_FAILED, type CopySource } from "./file-writer.js";
import { blobDigest, chunkLength, comparePaths, DEFAULT_MANIFEST_LIMITS, validateManifest, type Manifest, type ManifestLimits } from "./manifest.js";

/** Options of {@link materializeTree}. */
export interface MaterializeOptions {
  /** Limits the manifest must keep (defaults: {@link DEFAULT_MANIFEST_LIMITS}). */
  readonly limits?: ManifestLimits;
  /**
   * `readBlob` gives only bytes that hash to the digest asked for (as a
   * `BlobSource`'s `read` or a blob store's `readSync` does), so they are
   * not hashed again here; their length is still checked. Default false.
   */
  readonly readsVerified?: boolean;
  /**
   * Where a blob lies on disk (a blob store's `locate`): a file whose every
   * chunk is located there is read, checked and written on the writer's
   * thread, its bytes never on the event loop; one whose bytes there turn out
   * not to match is read through `readBlob` instead.
   */
  readonly locate?: (digest: string) => CopySource | undefined;
}

/** What one file or link of a materialised tree looked like right after it was written. */
export interface FileStamp {
  readonly size: number;
  readonly mode: number;
  readonly ino: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

/** A tree as {@link materializeTree} left it. */
export interface MaterializedTree {
  /** Every file and link written, by path. */
  readonly stamps: ReadonlyMap<string, FileStamp>;
}

/** The stamp of `stat`. */
export function stampOf(stat: Stats): FileStamp {
  return { size: stat.size, mode: stat.mode, ino: stat.ino, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
}

/**
 * Files handed to the writer's thread and not yet created. Creating a file is
 * what a tree costs: 0.05-2 ms each on this VM's ext4, which (without a
 * journal) skips every inode freed in the last seconds while it looks for a
 * free one. On the event loop, or through libuv's pool with the bytes written
 * from the loop, that kept the loop from receiving blobs; the writer's threads
 * (two where a core is free) create, write and stat each file in one go, a
 * batch per message; enough files are in flight to keep both busy.
 */
const CONCURRENT_FILES = 256;
/**
 * Files whose blobs are asked for ahead of those being written, and their
 * bytes at most: while blobs arrive, a file whose blobs came first is written
 * first, instead of every file waiting for the one before it.
 */
const AHEAD_FILES = 1024;
const AHEAD_BYTES = 64 * 1024 * 1024;

type FileEntry = Extract<Manifest["entries"][number], { kind: "file" }>;

/** What a file waiting for its blobs gets once another file failed: the tree is not made, and that failure is reported. */
const STOPPED = new Error("stopped: another entry failed");

/** The chunks of file entry `index`, each checked (its length always, its digest unless reads are verified). */
async function chunksOf(index: number, entry: FileEntry, readBlob: (digest: string) => Uint8Array | Promise<Uint8Array>, readsVerified: boolean, stopped: Promise<never>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (const [j, digest] of entry.chunks.entries()) {
    let chunk: Uint8Array;
    try {
      const read = readBlob(digest);
      chunk = read instanceof Uint8Array ? read : await Promise.race([read, stopped]);
    } catch (err) {
      if (err === STOPPED) throw STOPPED;
      throw failure(index, entry.path, err);
    }
    if (chunk.byteLength !== chunkLength(entry.size, j) || (!readsVerified && blobDigest(chunk) !== digest)) {
      throw new InvalidInputError(`the bytes given for ${digest} do not match it (entry ${JSON.stringify(entry.path)})`, `entries[${index}].chunks[${j}]`);
    }
    chunks.push(chunk);
  }
  return chunks;
}

/** The places on disk of every chunk of `entry`, each of the chunk's length, or undefined when one is not held so (or the file is too large to copy in one piece). */
function sourcesOf(entry: FileEntry, locate: (digest: string) => CopySource | undefined): CopySource[] | undefined {
  if (entry.size > MAX_COPY_BYTES) return undefined;
  const sources: CopySource[] = [];
  for (const [j, digest] of entry.chunks.entries()) {
    const source = locate(digest);
    if (source === undefined || source.digest !== digest || source.size !== chunkLength(entry.size, j)) return undefined;
    sources.push(source);
  }
  return sources;
}

/** `path` (a manifest's: checked to have no empty, `.` or `..` segment, nor a leading `/`) under the absolute directory `dir`, as `join` would give it without normalising it again for each of a tree's files. */
const under = (dir: string, path: string): string => `${dir}/${path}`;

/** Creates file entry `index` under `partial` from `sources` on the writer's thread; undefined (nothing created) when a source did not read back whole and true. */
async function copyFile(writer: FileWriter, partial: string, index: number, entry: FileEntry, sources: readonly CopySource[]): Promise<FileStamp | undefined> {
  try {
    return await writer.copy(under(partial, entry.path), entry.executable ? 0o755 : 0o644, sources);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === SOURCE_FAILED) return undefined;
    throw failure(index, entry.path, err);
  }
}

/** Creates file entry `index` under `partial` with `chunks`; answers its stamp. */
async function createFile(writer: FileWriter, partial: string, index: number, entry: FileEntry, chunks: readonly Uint8Array[]): Promise<FileStamp> {
  try {
    return await writer.create(under(partial, entry.path), entry.executable ? 0o755 : 0o644, chunks);
  } catch (err) {
    throw failure(index, entry.path, err);
  }
}

/**
 * Writes the file entries of `manifest` under `partial`, each as soon as its
 * blobs are read (up to {@link AHEAD_FILES} ahead), {@link CONCURRENT_FILES}
 * at a time; the first entry's failure is thrown once every file begun has
 * settled, so no write lands after the caller removes the partial tree.
 */
async function writeFiles(writer: FileWriter, manifest: Manifest, partial: string, readBlob: (digest: string) => Uint8Array | Promise<Uint8Array>, options: MaterializeOptions, stamps: Map<string, FileStamp>): Promise<void> {
  const readsVerified = options.readsVerified === true;
  const locate = options.locate;
  const failures: Array<{ index: number; error: unknown }> = [];
  let stop!: (err: Error) => void;
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => undefined);
  let ahead = 0;
  let aheadBytes = 0;
  const room: Array<() => void> = [];
  let writing = 0;
  const turns: Array<() => void> = [];
  /** Runs `write` as one of the {@link CONCURRENT_FILES} files being written. */
  const inTurn = async <T>(write: () => Promise<T>): Promise<T> => {
    if (writing >= CONCURRENT_FILES) await new Promise<void>((resolve) => turns.push(resolve));
    else writing++;
    try {
      if (failures.length > 0) throw STOPPED;
      return await write();
    } finally {
      // The turn passes straight to a waiting file, or the count goes down.
      const next = turns.shift();
      if (next === undefined) writing--;
      else next();
    }
  };
  const started: Array<Promise<void>> = [];
  for (const [index, entry] of manifest.entries.entries()) {
    if (entry.kind !== "file") continue;
    while (failures.length === 0 && (ahead >= AHEAD_FILES || (ahead > 0 && aheadBytes + entry.size > AHEAD_BYTES))) await new Promise<void>((resolve) => room.push(resolve));
    if (failures.length > 0) break;
    ahead++;
    aheadBytes += entry.size;
    started.push(
      (async () => {
        try {
          const sources = locate === undefined ? undefined : sourcesOf(entry, locate);
          let stamp = sources === undefined ? undefined : await inTurn(() => copyFile(writer, partial, index, entry, sources));
          if (stamp === undefined) {
            const chunks = await chunksOf(index, entry, readBlob, readsVerified, stopped);
            stamp = await inTurn(() => createFile(writer, partial, index, entry, chunks));
          }
          stamps.set(entry.path, stamp);
        } catch (error) {
          if (error !== STOPPED) {
            failures.push({ index, error });
            stop(STOPPED);
          }
        } finally {
          ahead--;
          aheadBytes -= entry.size;
          room.shift()?.();
        }
      })(),
    );
  }
  await Promise.all(started);
  // Of several failing at once, the first entry's is reported, as a sequential writer would.
  if (failures.length > 0) throw failures.sort((a, b) => a.index - b.index)[0]!.error;
}

/**
 * Writes the tree of `manifest` into `targetDir`, which must not exist yet,
 * all or nothing: the tree is built in a sibling `<target>.partial-<random>`
 * and renamed into place only when complete. Every chunk from `readBlob` is
 * checked against its digest before it is written; files are created
 * exclusively without following links, and links are made last, so no write
 * can land outside the tree. On any failure the partial directory is removed
 * and the error names the entry. Returns each entry's stat as written, for
 * telling later which files changed.
 */
export async function materializeTree(
  manifest: Manifest,
  targetDir: string,
  readBlob: (digest: string) => Uint8Array | Promise<Uint8Array>,
  options: MaterializeOptions = {},
): Promise<MaterializedTree> {
  validateManifest(manifest, options.limits ?? DEFAULT_MANIFEST_LIMITS);
  const target = resolve(targetDir);
  const exists = await lstat(target).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return false;
      throw err;
    },
  );
  if (exists) throw new InvalidInputError(`${target} exists already; a tree is materialised only into a new directory`, "targetDir");
  await mkdir(dirname(target), { recursive: true });
  const partial = `${target}.partial-${randomBytes(6).toString("hex")}`;
  await mkdir(partial, { mode: 0o755 });
  const stamps = new Map<string, FileStamp>();
  try {
    const directories = new Set<string>();
    for (const entry of manifest.entries) {
      for (let at = entry.path.indexOf("/"); at >= 0; at = entry.path.indexOf("/", at + 1)) directories.add(entry.path.slice(0, at));
    }
    // Bytewise order puts every directory after its parent.
    for (const directory of [...directories].sort(comparePaths)) {
      try {
        mkdirSync(join(partial, directory), { mode: 0o755 });
      } catch (err) {
        // A directory is no entry of its own: the first entry under it is named.
        const index = manifest.entries.findIndex((entry) => entry.path.startsWith(`${directory}/`));
        throw failure(index, manifest.entries[index]!.path, err);
      }
    }
    // Two threads where a core is free: creating and writing files is most of what a tree costs.
    const writer = new FileWriter({ threads: Math.min(2, availableParallelism()) });
    try {
      await writeFiles(writer, manifest, partial, readBlob, options, stamps);
    } finally {
      await writer.close();
    }
    for (const [index, entry] of manifest.entries.entries()) {
      if (entry.kind !== "symlink") continue;
      try {
        const path = join(partial, entry.path);
        symlinkSync(entry.target, path);
        stamps.set(entry.path, stampOf(lstatSync(path)));
      } catch (err) {
        throw failure(index, entry.path, err);
      }
    }
    await rename(partial, target);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
  return { stamps };
}

/** An error about entry `index`, naming it; errors that already name their field pass through. */
function failure(index: number, path: string, err: unknown): CoderClawError {
  if (err instanceof CoderClawError && err.field !== undefined) return err;
  const code = err instanceof CoderClawError ? err.code : "UNAVAILABLE";
  const message = err instanceof Error ? err.message : String(err);
  return new CoderClawError(code, `entries[${index}] ${JSON.stringify(path)}: could not be materialised: ${message}`, { field: `entries[${index}]`, cause: err });
}
