import { createHash } from "node:crypto";
import { closeSync, fdatasyncSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, unlinkSync, writeSync, writevSync } from "node:fs";
import { join } from "node:path";
import type { Database } from "../storage/level-database.js";
import { DIGEST_PATTERN } from "./manifest.js";

/** Blobs smaller than this go into pack files; larger ones keep a file each, where one file costs little beside its bytes. */
export const PACK_BELOW_BYTES = 64 * 1024;
/** A pack takes no more blobs once it holds this many bytes, so compacting one rewrites at most this much. */
const PACK_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Index keys start with NUL: a pin's key starts with its holder's name, which
 * is never empty and holds no NUL, so the two never meet in the database they share.
 */
const KEY_PREFIX = "\0p";
const KEY_END = "\0q";
/** Index value: pack number, offset and size (u32 each), last use (f64, ms since the epoch). */
const VALUE_BYTES = 20;
/** Appended bytes held for one write at most this long in bytes: a write per small blob cost more than its bytes. */
const UNWRITTEN_MAX_BYTES = 4 * 1024 * 1024;
/** Buffers one `writev` takes at most (Linux's IOV_MAX). */
const IOV_MAX = 1024;

/** Where a packed blob lies, and when it was last used. */
interface Location {
  pack: number;
  offset: number;
  size: number;
  used: number;
}

interface Pack {
  fd: number;
  /** Bytes written to the file. */
  size: number;
  /** Bytes of the blobs the index still points to in it. */
  live: number;
}

type IndexOp = { type: "put"; key: string; value: Uint8Array } | { type: "del"; key: string };

/** Blobs appended to a pack in memory, to be written at `offset` in one call. */
interface Unwritten {
  n: number;
  pack: Pack;
  offset: number;
  bytes: number;
  chunks: Uint8Array[];
  digests: string[];
}

/** A packed blob found at open. */
export interface PackedBlob {
  digest: string;
  size: number;
  used: number;
}

const keyOf = (digest: string): string => `${KEY_PREFIX}${digest}`;

function encode(at: Location): Uint8Array {
  const value = new Uint8Array(VALUE_BYTES);
  const view = new DataView(value.buffer);
  view.setUint32(0, at.pack);
  view.setUint32(4, at.offset);
  view.setUint32(8, at.size);
  view.setFloat64(12, at.used);
  return value;
}

function decode(value: Uint8Array): Location | undefined {
  if (value.byteLength !== VALUE_BYTES) return undefined;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return { pack: view.getUint32(0), offset: view.getUint32(4), size: view.getUint32(8), used: view.getFloat64(12) };
}

/**
 * Small blobs appended to pack files (`<dir>/<n>.pack`), indexed by digest in
 * LevelDB: storing one costs a write to an open file instead of creating,
 * writing and renaming a file of its own, which is most of what receiving a
 * tree of small files costs.
 *
 * Crash safety comes from order: a blob's bytes are written before its index
 * entry, and an index entry is removed (or moved by compaction) before the
 * bytes it pointed to go. A process killed at any point leaves index entries
 * that point to whole bytes; bytes no entry points to are dead space, and a
 * pack no entry points to is deleted at open. Without fsync a blob written
 * just before a kill may lose its index entry (it is then absent and fetched
 * again); with it, {@link flush} makes the bytes and then the entries durable.
 * Readers check every blob against its digest in any case.
 *
 * Appends made close together are written with one call, and their index
 * entries in one batch, when the event loop next gets to its check phase (or
 * sooner when a reader, a flush or a full buffer asks): a call and a batch per
 * blob cost several times what its bytes do. A write that fails loses the
 * blobs it carried ({@link BlobPacksOptions.lost}) before any entry of theirs is written.
 */
export class BlobPacks {
  readonly #dir: string;
  readonly #db: Database;
  readonly #fsync: boolean;
  readonly #packs = new Map<number, Pack>();
  readonly #where = new Map<string, Location>();
  #next: number;
  #active: number | undefined;
  /** Packs written to since the last flush (fdatasynced before the index entries when fsync is on). */
  readonly #dirty = new Set<number>();
  #ops: IndexOp[] = [];
  #syncNext = false;
  #pending: Promise<void> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #unwritten: Unwritten | undefined;
  readonly #lost: (digests: string[]) => void;
  /** A batch that failed since the last flush: its blobs are readable now and absent after a restart. */
  #failure: Error | undefined;
  /** One compaction at a time. */
  #compacting: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, db: Database, fsync: boolean, next: number, lost: (digests: string[]) => void) {
    this.#lost = lost;
    this.#dir = dir;
    this.#db = db;
    this.#fsync = fsync;
    this.#next = next;
  }

  /**
   * Opens the packs in `dir` and their index in `db`: index entries that point
   * past their pack's end or to a missing pack are removed, and packs no entry
   * points to (a compaction's output left by a kill before its index was
   * swapped, or its input left after) are deleted. Returns every packed blob.
   * `lost` hears of blobs appended whose bytes could not be written: they are no longer held.
   */
  static async open(dir: string, db: Database, fsync: boolean, lost: (digests: string[]) => void = () => undefined): Promise<{ packs: BlobPacks; found: PackedBlob[] }> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const files = new Map<number, number>();
    for (const name of readdirSync(dir)) {
      const m = /^(\d{1,9})\.pack$/.exec(name);
      if (m === null) continue;
      const fd = openSync(join(dir, name), "r");
      try {
        files.set(Number(m[1]), fstatSync(fd).size);
      } finally {
        closeSync(fd);
      }
    }
    const packs = new BlobPacks(dir, db, fsync, Math.max(0, ...files.keys()) + 1, lost);
    const found: PackedBlob[] = [];
    const live = new Map<number, number>();
    for await (const [key, value] of db.iterator({ gte: KEY_PREFIX, lt: KEY_END })) {
      const digest = key.slice(KEY_PREFIX.length);
      const at = decode(value);
      const end = at === undefined ? undefined : files.get(at.pack);
      if (at === undefined || end === undefined || at.offset + at.size > end || !DIGEST_PATTERN.test(digest)) {
        packs.#ops.push({ type: "del", key });
        continue;
      }
      packs.#where.set(digest, at);
      live.set(at.pack, (live.get(at.pack) ?? 0) + at.size);
      found.push({ digest, size: at.size, used: at.used });
    }
    for (const [n, size] of files) {
      if (!live.has(n)) {
        unlinkSync(packs.#path(n));
        continue;
      }
      packs.#packs.set(n, { fd: openSync(packs.#path(n), "r"), size, live: live.get(n)! });
    }
    if (packs.#ops.length > 0) await packs.flush();
    return { packs, found };
  }

  has(digest: string): boolean {
    return this.#where.has(digest);
  }

  /**
   * Appends `bytes` (the blob `digest`, not held yet) to the open pack; they
   * are written soon (the caller must not change them meanwhile), and the
   * index entry after them, by the next {@link flush} at the latest.
   */
  append(digest: string, bytes: Uint8Array, used: number): void {
    const pack = this.#writable(bytes.byteLength);
    const n = this.#active!;
    const at: Location = { pack: n, offset: pack.size, size: bytes.byteLength, used };
    const unwritten = (this.#unwritten ??= { n, pack, offset: pack.size, bytes: 0, chunks: [], digests: [] });
    unwritten.chunks.push(bytes);
    unwritten.digests.push(digest);
    unwritten.bytes += bytes.byteLength;
    pack.size += bytes.byteLength;
    pack.live += bytes.byteLength;
    this.#dirty.add(n);
    this.#where.set(digest, at);
    void this.#queue({ type: "put", key: keyOf(digest), value: encode(at) });
    if (unwritten.bytes >= UNWRITTEN_MAX_BYTES) this.#write();
  }

  /** The bytes stored for `digest` (unchecked: the caller hashes them), or undefined. */
  read(digest: string): Buffer | undefined {
    const at = this.#written(digest);
    if (at === undefined) return undefined;
    const pack = this.#packs.get(at.pack)!;
    const bytes = Buffer.allocUnsafe(at.size);
    for (let done = 0; done < at.size; ) {
      const n = readSync(pack.fd, bytes, done, at.size - done, at.offset + done);
      if (n === 0) return undefined;
      done += n;
    }
    return bytes;
  }

  /** Where the bytes of `digest` lie on disk, written (as `read` reads them: unchecked), or undefined. */
  locate(digest: string): { file: string; offset: number; size: number } | undefined {
    const at = this.#written(digest);
    return at === undefined ? undefined : { file: this.#path(at.pack), offset: at.offset, size: at.size };
  }

  /** Where `digest` lies, its bytes written first if they are among those appended and not written yet (others stay gathered). */
  #written(digest: string): Location | undefined {
    const at = this.#where.get(digest);
    const unwritten = this.#unwritten;
    if (at !== undefined && unwritten !== undefined && at.pack === unwritten.n && at.offset >= unwritten.offset) this.#write();
    // A failed write forgets what it carried.
    return at === undefined ? undefined : this.#where.get(digest);
  }

  /** Records a use of `digest` (its place in the least-recently-used order across restarts). */
  touch(digest: string, used: number): void {
    const at = this.#where.get(digest);
    if (at === undefined) return;
    at.used = used;
    void this.#queue({ type: "put", key: keyOf(digest), value: encode(at) });
  }

  /** Forgets `digest`; its bytes stay as dead space until their pack is compacted. */
  drop(digest: string): void {
    const at = this.#where.get(digest);
    if (at === undefined) return;
    this.#where.delete(digest);
    this.#packs.get(at.pack)!.live -= at.size;
    void this.#queue({ type: "del", key: keyOf(digest) });
  }

  /**
   * Resolves once every index change made so far is written (synced, with the
   * packs' bytes before it, when fsync is on); rejects with the first write
   * that failed since the last flush.
   */
  async flush(): Promise<void> {
    if (this.#ops.length > 0 || this.#pending !== undefined) await (this.#pending ?? this.#queue(undefined));
    else await this.#chain;
    const failure = this.#failure;
    this.#failure = undefined;
    if (failure !== undefined) throw failure;
  }

  /**
   * Rewrites each pack whose dead space is at least `minDeadFraction` of it
   * (0: any dead space) without its dead bytes, and deletes packs left with no
   * live blob. Crash-safe: the new pack is written and fsynced, the index
   * entries move to it in one synced batch, and only then is the old pack
   * deleted. A blob found damaged on the way is dropped; its digest is returned.
   */
  compact(minDeadFraction: number): Promise<string[]> {
    const run = this.#compacting.then(async () => {
      const damaged: string[] = [];
      for (const [n, pack] of [...this.#packs]) {
        const dead = pack.size - pack.live;
        if (dead === 0 || dead < pack.size * minDeadFraction) continue;
        damaged.push(...(await this.#rewrite(n, pack)));
      }
      return damaged;
    });
    this.#compacting = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.#compacting;
    this.#write();
    await this.flush();
    for (const pack of this.#packs.values()) closeSync(pack.fd);
    this.#packs.clear();
    this.#active = undefined;
  }

  async #rewrite(n: number, pack: Pack): Promise<string[]> {
    this.#write();
    if (this.#active === n) this.#active = undefined;
    const moving = [...this.#where].filter(([, at]) => at.pack === n);
    const damaged: string[] = [];
    if (moving.length > 0) {
      const m = this.#next++;
      const fd = openSync(this.#path(m), "wx+", 0o600);
      const fresh: Pack = { fd, size: 0, live: 0 };
      this.#packs.set(m, fresh);
      for (const [digest, at] of moving) {
        const bytes = this.read(digest);
        if (bytes === undefined || createHash("sha256").update(bytes).digest("hex") !== digest) {
          damaged.push(digest);
          this.drop(digest);
          continue;
        }
        for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, fresh.size + done);
        const moved: Location = { pack: m, offset: fresh.size, size: at.size, used: at.used };
        fresh.size += at.size;
        fresh.live += at.size;
        pack.live -= at.size;
        this.#where.set(digest, moved);
        this.#ops.push({ type: "put", key: keyOf(digest), value: encode(moved) });
      }
      // The new pack is durable before any entry points to it, whatever the store's fsync setting: the old one goes next.
      fdatasyncSync(fd);
      this.#syncNext = true;
      await this.flush();
    }
    this.#packs.delete(n);
    this.#dirty.delete(n);
    closeSync(pack.fd);
    unlinkSync(this.#path(n));
    return damaged;
  }

  #path(n: number): string {
    return join(this.#dir, `${n}.pack`);
  }

  /** The open pack, with room for `bytes` more (a new one when it is full). */
  #writable(bytes: number): Pack {
    const held = this.#active === undefined ? undefined : this.#packs.get(this.#active);
    if (held !== undefined && held.size + bytes <= PACK_MAX_BYTES) return held;
    this.#write();
    const n = this.#next++;
    const pack: Pack = { fd: openSync(this.#path(n), "wx+", 0o600), size: 0, live: 0 };
    this.#packs.set(n, pack);
    this.#active = n;
    return pack;
  }

  /**
   * Writes the appended bytes not written yet. On failure their blobs are
   * forgotten (their index entries, not yet written, with them) and the pack
   * is written to no more; the failure is kept for {@link flush}.
   */
  #write(): void {
    const unwritten = this.#unwritten;
    if (unwritten === undefined) return;
    this.#unwritten = undefined;
    try {
      for (let done = 0; done < unwritten.bytes; ) done += writevSync(unwritten.pack.fd, remainder(unwritten.chunks, done, IOV_MAX), unwritten.offset + done);
    } catch (err) {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
      const gone = new Set(unwritten.digests.map(keyOf));
      this.#ops = this.#ops.filter((op) => op.type !== "put" || !gone.has(op.key));
      for (const digest of unwritten.digests) {
        const at = this.#where.get(digest);
        if (at === undefined || at.pack !== unwritten.n) continue;
        this.#where.delete(digest);
        unwritten.pack.live -= at.size;
      }
      if (this.#active === unwritten.n) this.#active = undefined;
      this.#lost(unwritten.digests);
    }
  }

  /**
   * Index changes are written in order, those made before the event loop's
   * next check phase in one batch, after the bytes appended meanwhile: a
   * blob's entry lands after its bytes, and a drop after the entry it removes.
   * Never rejects: a failure is kept for {@link flush}.
   */
  #queue(op: IndexOp | undefined): Promise<void> {
    if (op !== undefined) this.#ops.push(op);
    if (this.#pending !== undefined) return this.#pending;
    const run = this.#chain.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(async () => {
      this.#pending = undefined;
      this.#write();
      const ops = this.#ops;
      const sync = this.#fsync || this.#syncNext;
      this.#ops = [];
      this.#syncNext = false;
      if (this.#fsync) {
        for (const n of this.#dirty) {
          const pack = this.#packs.get(n);
          if (pack !== undefined) fdatasyncSync(pack.fd);
        }
      }
      this.#dirty.clear();
      if (ops.length > 0) await this.#db.batch(ops, { sync });
    }).catch((err: unknown) => {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
    });
    this.#pending = run;
    this.#chain = run;
    return run;
  }
}

/** Views of the bytes of `chunks` from byte `from` on, up to `max` of them. */
function remainder(chunks: readonly Uint8Array[], from: number, max: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = from;
  for (const chunk of chunks) {
    if (rest.length === max) break;
    if (skip >= chunk.byteLength) {
      skip -= chunk.byteLength;
      continue;
    }
    rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return rest;
}
