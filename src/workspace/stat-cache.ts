import type { FileStat } from "./file-chunks.js";
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
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
  readonly chunks: readonly string[];
}

/**
 * A cache's records as loaded or last saved: the fields of the file as split
 * (path, stat key, digests, path, ...), found by path through `previous`
 * (path to record number), with no object per record.
 */
export interface StatCacheRecords {
  readonly root: string;
  readonly fields: readonly string[];
  readonly previous: ReadonlyMap<string, number>;
  /** Chunk lists already checked, by record number: handed out again as they are. */
  readonly chunks: Array<readonly string[] | undefined>;
}

/**
 * Where a process keeps a cache's records between snapshots, with the
 * signature (size, times, inode) of the file they were read from or saved
 * to: a file that still has that signature is not read and parsed again.
 */
export interface KeptStatCache {
  cache: { readonly signature: string; readonly records: StatCacheRecords } | undefined;
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

  private constructor(
    private readonly file: string | undefined,
    private readonly records: StatCacheRecords,
    private readonly kept: KeptStatCache | undefined,
  ) {
    this.used = new Uint8Array(Math.floor(records.fields.length / 3));
  }

  /**
   * Loads the cache for `root` from `file` (none: an in-memory cache that
   * saves nothing); with `kept`, from the records kept there when the file is
   * still the one they came from.
   */
  static async load(file: string | undefined, root: string, kept?: KeptStatCache): Promise<StatCache> {
    if (file === undefined) return new StatCache(undefined, recordsOf("", root), undefined);
    const signature = kept === undefined ? undefined : await signatureOf(file);
    const held = kept?.cache;
    if (held !== undefined && signature !== undefined && held.signature === signature && held.records.root === root) return new StatCache(file, held.records, kept);
    // Read as bytes and decoded at once: a streaming decode of a large cache costs more.
    const records = recordsOf(await readFile(file).then((bytes) => bytes.toString("utf8"), () => ""), root);
    // Stat'ed before the read: a file replaced in between shows another signature next time and is read again.
    if (signature !== undefined) kept!.cache = { signature, records };
    return new StatCache(file, records, kept);
  }

  /** The record number of `path` (its place in {@link paths}), if the cache holds a record of it. */
  recordOf(path: string): number | undefined {
    return this.records.previous.get(path);
  }

  /**
   * The paths the cache holds records of, from the last run, in the order of
   * their record numbers; undefined in place of those recorded by git blob id,
   * which a snapshot of a clean index entry takes without a stat.
   */
  statPaths(): Array<string | undefined> {
    const paths: Array<string | undefined> = new Array<string | undefined>(this.used.length);
    for (let n = 0; n < this.used.length; n++) paths[n] = this.records.fields[n * 3 + 1]!.startsWith(GIT_KEY) ? undefined : this.records.fields[n * 3]!;
    return paths;
  }

  /**
   * The recorded chunk digests of `path` if its {@link statKey} (for `size`
   * bytes) shows it unchanged since, else undefined; `n` is its record number
   * when the caller found it already ({@link recordOf}).
   */
  lookup(path: string, key: string, size: number, n = this.records.previous.get(path)): readonly string[] | undefined {
    if (n === undefined || this.records.fields[n * 3 + 1] !== key) return undefined;
    return this.#chunks(n, size);
  }

  /**
   * The size and chunk digests recorded for `path` when its content was the
   * git blob `oid` (as git's index says it still is), else undefined.
   */
  lookupBlob(path: string, oid: string, n = this.records.previous.get(path)): { size: number; chunks: readonly string[] } | undefined {
    const key = n === undefined ? undefined : this.records.fields[n * 3 + 1]!;
    const prefix = `${GIT_KEY}${oid} `;
    if (key === undefined || !key.startsWith(prefix)) return undefined;
    const size = Number(key.slice(prefix.length));
    if (!Number.isSafeInteger(size) || size < 0) return undefined;
    const chunks = this.#chunks(n!, size);
    return chunks === undefined ? undefined : { size, chunks };
  }

  #chunks(n: number, size: number): readonly string[] | undefined {
    const count = Math.ceil(size / CHUNK_SIZE);
    let chunks = this.records.chunks[n];
    if (chunks === undefined) {
      const digests = this.records.fields[n * 3 + 2]!;
      // A damaged record is a miss, never a broken manifest.
      if (digests.length !== DIGEST_HEX * count) return undefined;
      // Most files are one chunk: their digest is the record's string as it is.
      const list: string[] = [];
      if (digests.length === DIGEST_HEX) list.push(digests);
      else for (let at = 0; at < digests.length; at += DIGEST_HEX) list.push(digests.slice(at, at + DIGEST_HEX));
      if (!list.every(isDigest)) return undefined;
      chunks = this.records.chunks[n] = Object.freeze(list);
    } else if (chunks.length !== count) return undefined;
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
    this.added.set(path, { key: statKey(stat), digests: chunks.join(""), chunks });
  }

  /**
   * Records the digests of `path`, whose `size` bytes git names blob `oid`
   * (checked by hashing them as git does): the same content whatever its
   * stat, so no racy margin applies.
   */
  recordBlob(path: string, oid: string, size: number, chunks: readonly string[]): void {
    this.recorded += 1;
    this.added.set(path, { key: `${GIT_KEY}${oid} ${size}`, digests: chunks.join(""), chunks });
  }

  /**
   * Writes this run's records atomically (temp file, then rename); a no-op
   * without a file, or when every record was a hit and none dropped out.
   */
  async save(): Promise<void> {
    if (this.file === undefined) return;
    if (this.recorded === 0 && this.usedCount === this.records.previous.size) return;
    const fields: string[] = [];
    const chunks: Array<readonly string[] | undefined> = [];
    for (let n = 0; n < this.used.length; n++) {
      const path = this.records.fields[n * 3]!;
      if (this.used[n] === 0 || this.added.has(path)) continue;
      fields.push(path, this.records.fields[n * 3 + 1]!, this.records.fields[n * 3 + 2]!);
      chunks.push(this.records.chunks[n]);
    }
    for (const [path, record] of this.added) {
      fields.push(path, record.key, record.digests);
      // Hashed here, or taken from a record already checked.
      chunks.push(Object.freeze(record.chunks));
    }
    // Every field ends with a NUL, the last one too.
    await writeFileAtomic(this.file, `${HEADER}\n${JSON.stringify(this.records.root)}\n${fields.join("\0")}${fields.length > 0 ? "\0" : ""}`);
    if (this.kept === undefined) return;
    const signature = await signatureOf(this.file);
    if (signature !== undefined) this.kept.cache = { signature, records: { root: this.records.root, fields, previous: numbered(fields), chunks } };
  }
}

/** What changes whenever the file is replaced or rewritten; undefined when it cannot be stat'ed. */
async function signatureOf(file: string): Promise<string | undefined> {
  const st = await stat(file).catch(() => undefined);
  return st === undefined ? undefined : `${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino} ${st.dev}`;
}

function recordsOf(text: string, root: string): StatCacheRecords {
  const fields = splitCache(text, root);
  return { root, fields, previous: numbered(fields), chunks: [] };
}

/** Record numbers by path. */
function numbered(fields: readonly string[]): Map<string, number> {
  const previous = new Map<string, number>();
  for (let i = 0; i * 3 + 2 < fields.length; i++) previous.set(fields[i * 3]!, i);
  return previous;
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

/** The stat cache file of snapshots of `dir` in `cacheDir`: one per directory, named by a hash of its path. */
export function statCacheFile(cacheDir: string, dir: string): string {
  return join(cacheDir, createHash("sha256").update(dir).digest("hex").slice(0, 32));
}
