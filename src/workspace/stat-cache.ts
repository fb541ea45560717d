import type { BigIntStats } from "node:fs";
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "../../identity/atomic-file.js";

/**
 * A file is trusted unchanged from its stat only when its last change was
 * this long before the stat the cache recorded. Closer than that, a write in
 * the same timestamp tick (coarse on some filesystems: 1 s on HFS+, 2 s on
 * FAT) could leave size, mtime and ctime as they were, so the file is hashed
 * again next time, as git does with "racily clean" index entries.
 */
export const RACY_MARGIN_NS = 2_000_000_000n;

const CACHE_VERSION = 1;
const decimal = z.string().regex(/^\d{1,25}$/);
const recordSchema = z.tuple([z.number().int().min(0), decimal, decimal, decimal, decimal, decimal, z.array(z.string().regex(/^[0-9a-f]{64}$/))]);
const cacheSchema = z.object({ version: z.literal(CACHE_VERSION), root: z.string(), entries: z.record(z.string(), recordSchema) });

interface CacheRecord {
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly ino: bigint;
  readonly dev: bigint;
  /** Wall-clock time just before the stat was taken. */
  readonly statAtNs: bigint;
  readonly chunks: string[];
}

/** The current wall-clock time in nanoseconds, comparable with file timestamps. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/**
 * Chunk digests of files keyed by relative path and stat (size, mtime, ctime,
 * inode, device), persisted as a JSON file. A cache that cannot be read or
 * parsed, or that belongs to another root, is started afresh; a record is
 * used only when every stat field still matches and the file was not racily
 * fresh when recorded. Only files looked up or recorded in this run are saved,
 * so deleted files drop out.
 */
export class StatCache {
  private readonly previous: Map<string, CacheRecord>;
  private readonly current = new Map<string, CacheRecord>();
  /** Look-ups answered from the cache in this run. */
  hits = 0;

  private constructor(
    private readonly file: string | undefined,
    private readonly root: string,
    previous: Map<string, CacheRecord>,
  ) {
    this.previous = previous;
  }

  /** Loads the cache for `root` from `file` (none: an in-memory cache that saves nothing). */
  static async load(file: string | undefined, root: string): Promise<StatCache> {
    const previous = new Map<string, CacheRecord>();
    if (file !== undefined) {
      try {
        const parsed = cacheSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
        if (parsed.success && parsed.data.root === root) {
          for (const [path, [size, mtimeNs, ctimeNs, ino, dev, statAtNs, chunks]] of Object.entries(parsed.data.entries)) {
            previous.set(path, { size, mtimeNs: BigInt(mtimeNs), ctimeNs: BigInt(ctimeNs), ino: BigInt(ino), dev: BigInt(dev), statAtNs: BigInt(statAtNs), chunks });
          }
        }
      } catch {
        previous.clear();
      }
    }
    return new StatCache(file, root, previous);
  }

  /** The recorded chunk digests of `path` if `stat` shows it unchanged since, else undefined. */
  lookup(path: string, stat: BigIntStats): string[] | undefined {
    const record = this.previous.get(path);
    if (record === undefined) return undefined;
    const matches =
      BigInt(record.size) === stat.size && record.mtimeNs === stat.mtimeNs && record.ctimeNs === stat.ctimeNs && record.ino === stat.ino && record.dev === stat.dev;
    const settled = record.ctimeNs < record.statAtNs - RACY_MARGIN_NS && record.mtimeNs < record.statAtNs - RACY_MARGIN_NS;
    if (!matches || !settled) return undefined;
    this.hits += 1;
    this.current.set(path, record);
    return record.chunks;
  }

  /** Records the digests of `path` as hashed at `stat`, taken at `statAtNs`. */
  record(path: string, stat: BigIntStats, statAtNs: bigint, chunks: string[]): void {
    this.current.set(path, { size: Number(stat.size), mtimeNs: stat.mtimeNs, ctimeNs: stat.ctimeNs, ino: stat.ino, dev: stat.dev, statAtNs, chunks });
  }

  /** Writes this run's records atomically (temp file, then rename); a no-op without a file. */
  async save(): Promise<void> {
    if (this.file === undefined) return;
    // No prototype, so a file named __proto__ is a key like any other.
    const entries = Object.create(null) as Record<string, unknown>;
    for (const [path, r] of this.current) {
      entries[path] = [r.size, String(r.mtimeNs), String(r.ctimeNs), String(r.ino), String(r.dev), String(r.statAtNs), r.chunks];
    }
    await writeFileAtomic(this.file, JSON.stringify({ version: CACHE_VERSION, root: this.root, entries }));
  }
}
