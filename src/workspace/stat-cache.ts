import type { FileStat } from "./file-chunks.js";
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../../identity/atomic-file.js";
import { CHUNK_SIZE, isDigest } from "./manifest.js";

/**
 * A file is trusted unchanged from its stat only when its last change was
 * this long before the stat the cache recorded. Closer than that, a write in
 * the same timestamp tick (coarse on some filesystems: 1 s on HFS+, 2 s on
 * FAT) could leave size, mtime and ctime as they were, so such a file is not
 * recorded and is hashed again next time, as git does with "racily clean"
 * index entries.
 */
export const RACY_MARGIN_MS = 2000;

const HEADER = "coderclaw-stat-cache 1";
/** Starts the key of a record by git blob id (a stat key starts with a digit). */
const GIT_KEY = "git ";
const DIGEST_HEX = 64;

/**
 * What changes whenever a file's content can have: size, mtime, ctime, inode
 * and device. Equal keys, same bytes. Times are kept to the microsecond: any
 * change after a recorded stat is at least {@link RACY_MARGIN_MS} later, far
 * beyond that. (BigInt stats would keep every nanosecond at twice the cost of
 * a warm snapshot, and integers print several times faster than fractions.)
 */
export function statKey(stat: FileStat): string {
  return `${stat.size} ${Math.round(stat.mtimeMs * 1000)} ${Math.round(stat.ctimeMs * 1000)} ${stat.ino} ${stat.dev}`;
}

interface CacheRecord {
  readonly key: string;
  /** The chunk digests, concatenated. */
  readonly digests: string;
}

/**
 * Chunk digests of files keyed by relative path and stat (size, mtime, ctime,
 * inode, device), persisted in a file. The file is a header line, the root
 * as a JSON line, then NUL-separated triples of path, stat key and digests:
 * NUL cannot occur in a path, and splitting one string is several times
 * cheaper than parsing JSON for tens of thousands of files. A file that is
 * unreadable, malformed or for another root is started afresh; a record is
 * used only when its stat key matches exactly and its digests are well
 * formed. Only files looked up or recorded in this run are saved, so deleted
 * files drop out.
 */
export class StatCache {
  /** Records made in this run. */
  private readonly added = new Map<string, CacheRecord>();
  /** Which of the last run's records were used in this one, by record number. */
  private readonly used: Uint8Array;
  private usedCount = 0;
  private recorded = 0;
  /** Look-ups answered from the cache in this run. */
  hits = 0;

  /**
   * The last run's records stay in the fields of the file as split, found by
   * path through `previous` (path to record number): no object per record.
   */
  private constructor(
    private readonly file: string | undefined,
    private readonly root: string,
    private readonly previous: Map<string, number>,
    private readonly fields: readonly string[],
  ) {
    this.used = new Uint8Array(Math.floor(fields.length / 3));
  }

  /** Loads the cache for `root` from `file` (none: an in-memory cache that saves nothing). */
  static async load(file: string | undefined, root: string): Promise<StatCache> {
    // Read as bytes and decoded at once: a streaming decode of a large cache costs more.
    const text = file === undefined ? "" : await readFile(file).then((bytes) => bytes.toString("utf8"), () => "");
    const fields = splitCache(text, root);
    const previous = new Map<string, number>();
    for (let i = 0; i * 3 + 2 < fields.length; i++) previous.set(fields[i * 3]!, i);
    return new StatCache(file, root, previous, fields);
  }

  /** The record number of `path` (its place in {@link paths}), if the cache holds a record of it. */
  recordOf(path: string): number | undefined {
    return this.previous.get(path);
  }

  /**
   * The paths the cache holds records of, from the last run, in the order of
   * their record numbers; undefined in place of those recorded by git blob id,
   * which a snapshot of a clean index entry takes without a stat.
   */
  statPaths(): Array<string | undefined> {
    const paths: Array<string | undefined> = new Array<string | undefined>(this.used.length);
    for (let n = 0; n < this.used.length; n++) paths[n] = this.fields[n * 3 + 1]!.startsWith(GIT_KEY) ? undefined : this.fields[n * 3]!;
    return paths;
  }

  /**
   * The recorded chunk digests of `path` if its {@link statKey} (for `size`
   * bytes) shows it unchanged since, else undefined; `n` is its record number
   * when the caller found it already ({@link recordOf}).
   */
  lookup(path: string, key: string, size: number, n = this.previous.get(path)): string[] | undefined {
    if (n === undefined || this.fields[n * 3 + 1] !== key) return undefined;
    return this.#chunks(n, size);
  }

  /**
   * The size and chunk digests recorded for `path` when its content was the
   * git blob `oid` (as git's index says it still is), else undefined.
   */
  lookupBlob(path: string, oid: string, n = this.previous.get(path)): { size: number; chunks: string[] } | undefined {
    const key = n === undefined ? undefined : this.fields[n * 3 + 1]!;
    const prefix = `${GIT_KEY}${oid} `;
    if (key === undefined || !key.startsWith(prefix)) return undefined;
    const size = Number(key.slice(prefix.length));
    if (!Number.isSafeInteger(size) || size < 0) return undefined;
    const chunks = this.#chunks(n!, size);
    return chunks === undefined ? undefined : { size, chunks };
  }

  #chunks(n: number, size: number): string[] | undefined {
    const digests = this.fields[n * 3 + 2]!;
    // A damaged record is a miss, never a broken manifest.
    if (digests.length !== DIGEST_HEX * Math.ceil(size / CHUNK_SIZE)) return undefined;
    // Most files are one chunk: their digest is the record's string as it is.
    const chunks: string[] = [];
    if (digests.length === DIGEST_HEX) chunks.push(digests);
    else for (let at = 0; at < digests.length; at += DIGEST_HEX) chunks.push(digests.slice(at, at + DIGEST_HEX));
    if (!chunks.every(isDigest)) return undefined;
    this.hits += 1;
    if (this.used[n] === 0) {
      this.used[n] = 1;
      this.usedCount += 1;
    }
    return chunks;
  }

  /**
   * Records the digests of `path` as hashed at `stat`, taken at `statAtMs`
   * (wall clock); a file changed within {@link RACY_MARGIN_MS} before that is
   * left out.
   */
  record(path: string, stat: FileStat, statAtMs: number, chunks: readonly string[]): void {
    this.recorded += 1;
    if (stat.ctimeMs >= statAtMs - RACY_MARGIN_MS || stat.mtimeMs >= statAtMs - RACY_MARGIN_MS) return;
    this.added.set(path, { key: statKey(stat), digests: chunks.join("") });
  }

  /**
   * Records the digests of `path`, whose `size` bytes git names blob `oid`
   * (checked by hashing them as git does): the same content whatever its
   * stat, so no racy margin applies.
   */
  recordBlob(path: string, oid: string, size: number, chunks: readonly string[]): void {
    this.recorded += 1;
    this.added.set(path, { key: `${GIT_KEY}${oid} ${size}`, digests: chunks.join("") });
  }

  /**
   * Writes this run's records atomically (temp file, then rename); a no-op
   * without a file, or when every record was a hit and none dropped out.
   */
  async save(): Promise<void> {
    if (this.file === undefined) return;
    if (this.recorded === 0 && this.usedCount === this.previous.size) return;
    const parts = [`${HEADER}\n${JSON.stringify(this.root)}\n`];
    for (let n = 0; n < this.used.length; n++) {
      const path = this.fields[n * 3]!;
      if (this.used[n] === 1 && !this.added.has(path)) parts.push(`${path}\0${this.fields[n * 3 + 1]}\0${this.fields[n * 3 + 2]}\0`);
    }
    for (const [path, record] of this.added) parts.push(`${path}\0${record.key}\0${record.digests}\0`);
    await writeFileAtomic(this.file, parts.join(""));
  }
}

/** The cache file's fields (path, stat key, digests, path, ...) when it is a well-formed cache of `root`, else none. */
function splitCache(text: string, root: string): string[] {
  const headerEnd = text.indexOf("\n");
  const rootEnd = text.indexOf("\n", headerEnd + 1);
  if (headerEnd < 0 || rootEnd < 0 || text.slice(0, headerEnd) !== HEADER || text.slice(headerEnd + 1, rootEnd) !== JSON.stringify(root)) return [];
  const fields = text.slice(rootEnd + 1).split("\0");
  // Complete triples, then the empty string after the last NUL.
  if (fields.length % 3 !== 1 || fields[fields.length - 1] !== "") return [];
  return fields;
}
