import { createHash, type Hash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { open, readdir, readFile, rm, stat, utimes, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { CoderClawError } from "../contract/errors.js";
import { openDatabase, type Database } from "../storage/level-database.js";
import type { BlobSource } from "./blob-source.js";
import { BlobPacks, PACK_BELOW_BYTES } from "./blob-packs.js";
import { FileWriter, type CopySource } from "./file-writer.js";
import { DIGEST_PATTERN, isDigest } from "./manifest.js";
import { KeyedTurns } from "../util/keyed-turns.js";

/** Largest blob: the snapshot code cuts files in chunks of this size. */
export const MAX_BLOB_BYTES = 1024 * 1024;
/** Largest encoded manifest (tree) stored by tree id. */
export const MAX_TREE_BYTES = 64 * 1024 * 1024;
/** Default quota of a blob store: 4 GiB. */
export const DEFAULT_BLOB_QUOTA_BYTES = 4 * 1024 * 1024 * 1024;

/** Holder names are stored inside LevelDB keys, before a NUL separator. */
const HOLDER = /^[^\0]{1,256}$/;
/** A partial blob counts as at least this against its bound: a file takes a disk block however few bytes it holds. */
const PARTIAL_BLOCK_BYTES = 4096;
/** An access refreshes a blob's mtime (its place in the LRU order across restarts) at most this often. */
const TOUCH_INTERVAL_MS = 60_000;

/** Bytes that do not hash to the digest they were offered under. */
export class DigestMismatchError extends CoderClawError {
  readonly digest: string;
  constructor(digest: string, detail: string) {
    super("PROTOCOL", `blob ${digest}: ${detail}`);
    this.digest = digest;
  }
}

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Options of {@link openBlobStore}. */
export interface BlobStoreOptions {
  /** Directory of the store; created if missing. */
  dir: string;
  /** Bytes of blobs and trees kept at most; unpinned ones are evicted, least recently used first. Default 4 GiB. */
  quotaBytes?: number;
  /**
   * Whether each file is fsynced before it is renamed into place. Default true.
   * Without it a blob costs a tenth as much to store, and a process killed at
   * any point still leaves no partial file (the rename is atomic); a power
   * loss may then leave a blob whose bytes were lost, which {@link BlobStore.read}
   * finds (it checks every blob against its digest) and drops.
   */
  fsync?: boolean;
  /**
   * A partial blob not written to for this long is removed by {@link BlobStore.gc}, ms. Default one day.
   * Partial blobs take a quarter of the quota at most besides: the least recently written idle ones go to make room.
   */
  partialMaxAgeMs?: number;
}

/** What {@link BlobStore.gc} removed. */
export interface GcResult {
  /** Blobs and trees removed. */
  removed: number;
  freedBytes: number;
  /** Abandoned partial blobs removed. */
  partials: number;
}

/**
 * A content-addressed store of blobs (at most 1 MiB each) and manifests (by
 * tree id), on disk, with a quota, reference counting by named holders and
 * resumable partial writes. Every write is verified against its digest before
 * it becomes visible.
 */
export interface BlobStore extends BlobSource {
  readonly dir: string;
  readonly quotaBytes: number;
  /** Store `bytes` under their digest, which is returned; already held bytes are stored once. */
  put(bytes: Uint8Array): Promise<string>;
  /** Store `bytes` under `digest`; throws {@link DigestMismatchError} naming the digest when they do not hash to it. */
  putVerified(digest: string, bytes: Uint8Array): Promise<void>;
  /**
   * {@link putVerified} for several blobs at once, each checked before any is
   * stored: when one does not hash to its digest, none is stored and
   * {@link DigestMismatchError} names it.
   */
  putVerifiedAll(blobs: ReadonlyArray<readonly [digest: string, bytes: Uint8Array]>): Promise<void>;
  has(digest: string): boolean;
  /** The digests of `digests` this store holds no blob of, in order, each once. */
  missing(digests: Iterable<string>): Promise<string[]>;
  /** The blob `digest`, checked against it; a blob damaged on disk is dropped and reads as undefined. */
  read(digest: string): Promise<Uint8Array | undefined>;
  /** {@link read} in one synchronous call: a blob is at most 1 MiB, read at once from the page cache more often than not. */
  readSync(digest: string): Uint8Array | undefined;
  /**
   * Where the blob `digest` lies on disk, for a reader that checks it against
   * its digest itself (a materialising worker), or undefined when not held.
   * Counts as a use. The place holds until a garbage collection or a pack's
   * compaction: a reader that then finds other bytes there reads as {@link read} instead.
   */
  locate(digest: string): CopySource | undefined;
  /** Bytes of `digest` received so far by {@link appendPartial}; 0 when none. */
  partialOffset(digest: string): Promise<number>;
  /**
   * Append `bytes` at `offset` of the partial blob `digest` (offset must equal
   * {@link partialOffset}). The blob is committed as soon as its bytes hash to
   * `digest`: "complete". With `last`, bytes that still do not hash to it are
   * discarded and {@link DigestMismatchError} thrown.
   */
  appendPartial(digest: string, offset: number, bytes: Uint8Array, options?: { last?: boolean }): Promise<"partial" | "complete">;
  /** Drop what {@link appendPartial} received of `digest`. */
  discardPartial(digest: string): Promise<void>;
  /** Keep `digests` (blobs or tree ids, held or not yet) from garbage collection on behalf of `holder`; durable when it resolves. */
  pin(holder: string, digests: Iterable<string>): Promise<void>;
  /** Drop every pin of `holder`; durable when it resolves. */
  unpin(holder: string): Promise<void>;
  /** The digests `holder` pins. */
  pinnedBy(holder: string): ReadonlySet<string>;
  /** Every holder that pins something, as kept across restarts. */
  holders(): string[];
  /** How many holders pin `digest`. */
  refCount(digest: string): number;
  /** Store the manifest `bytes` of tree `treeId` (their SHA-256); throws {@link DigestMismatchError} otherwise. */
  putTree(treeId: string, bytes: Uint8Array): Promise<void>;
  getTree(treeId: string): Promise<Uint8Array | undefined>;
  /**
   * Remove unpinned blobs and trees, least recently used first, until the
   * store holds at most `downToBytes` (default: its quota; 0 removes every
   * unpinned entry), and partial blobs abandoned for longer than
   * {@link BlobStoreOptions.partialMaxAgeMs} (they have a bound of their own, a quarter of the quota).
   */
  gc(options?: { downToBytes?: number }): Promise<GcResult>;
  /** Bytes and entries held now (blobs and trees). */
  usage(): { bytes: number; entries: number };
  close(): Promise<void>;
}

type Kind = "blob" | "tree";

interface Entry {
  digest: string;
  kind: Kind;
  size: number;
  /** Last access, ms since the epoch. */
  used: number;
  /** Last time the access was recorded on disk (a file's mtime, a packed blob's index entry). */
  touched: number;
  /** Stored in a pack (src/workspace/blob-packs.ts) rather than a file of its own. */
  packed?: true;
}

interface OpenPartial {
  file: FileHandle;
  hash: Hash;
  size: number;
}

/** Throws unless `bytes` may be stored as the blob `digest`: its size within the limit, and hashing to it. */
function verify(digest: string, bytes: Uint8Array): void {
  checkDigest(digest);
  if (bytes.byteLength > MAX_BLOB_BYTES) throw new DigestMismatchError(digest, `${bytes.byteLength} bytes exceed the blob limit of ${MAX_BLOB_BYTES}`);
  const actual = sha256Hex(bytes);
  if (actual !== digest) throw new DigestMismatchError(digest, `bytes hash to ${actual}`);
}

function checkDigest(digest: string, what = "digest"): void {
  if (!isDigest(digest)) throw new CoderClawError("INVALID_INPUT", `${what} must be 64 lowercase hex characters: ${JSON.stringify(digest.slice(0, 80))}`);
}

function checkHolder(holder: string): void {
  if (!HOLDER.test(holder)) throw new CoderClawError("INVALID_INPUT", `holder name must be 1-256 characters without NUL: ${JSON.stringify(holder.slice(0, 80))}`);
}

/**
 * Writes `bytes` to the new file `path` with synchronous calls: a store
 * receiving thousands of small blobs spends several times less per blob than
 * through the thread pool, and each call is short.
 */
function writeWhole(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, "wx", 0o600);
  try {
    for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done);
  } finally {
    closeSync(fd);
  }
}

/** Key of an entry: a tree's bytes could also be offered as a blob, and the two are kept apart. */
function entryKey(kind: Kind, digest: string): string {
  return kind === "blob" ? digest : `tree:${digest}`;
}

function pinKey(holder: string, digest: string): string {
  return `${holder}\0${digest}`;
}

/**
 * Opens the blob store in `options.dir`.
 *
 * Layout: blobs under {@link PACK_BELOW_BYTES} appended to packs at
 * `<dir>/.packs/<n>.pack` (indexed in the LevelDB, see blob-packs.ts), larger
 * ones and those completed from partial writes at `<dir>/<2 hex>/<62 hex>`,
 * manifests at `<dir>/.trees/<id>`, partial blobs at `<dir>/.partial/<digest>`,
 * files being written at `<dir>/.tmp/`, and pins in a LevelDB at
 * `<dir>/.pins`. Every file is written to `.tmp`, fsynced and renamed into
 * place, so a process killed at any point leaves either the whole verified
 * file or none (leftovers in `.tmp` are removed at open). Pins live in LevelDB because a holder pins thousands of
 * digests at once and an atomic, synced batch makes that one durable step: a
 * holder has all of the digests it pinned in one call or none of them. The
 * reference counts and the LRU order are rebuilt at open from the pins, the
 * files' mtimes and the packed blobs' index entries. Removing a packed blob
 * leaves dead space in its pack, which {@link BlobStore.gc} reclaims by
 * rewriting the pack once a quarter of it is dead (any of it, with `downToBytes: 0`).
 */
export async function openBlobStore(options: BlobStoreOptions): Promise<BlobStore> {
  const { dir } = options;
  const quotaBytes = options.quotaBytes ?? DEFAULT_BLOB_QUOTA_BYTES;
  const fsync = options.fsync ?? true;
  const partialMaxAgeMs = options.partialMaxAgeMs ?? 24 * 60 * 60 * 1000;
  const tmpDir = join(dir, ".tmp");
  const partialDir = join(dir, ".partial");
  const treeDir = join(dir, ".trees");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  rmSync(tmpDir, { recursive: true, force: true });
  for (const d of [tmpDir, partialDir, treeDir]) mkdirSync(d, { recursive: true, mode: 0o700 });

  /** Every blob and tree held, least recently used first (a Map keeps insertion order). */
  const entries = new Map<string, Entry>();
  const found: Array<[string, Entry]> = [];
  for (const name of readdirSync(dir)) {
    if (!/^[0-9a-f]{2}$/.test(name)) continue;
    for (const rest of readdirSync(join(dir, name))) {
      if (!/^[0-9a-f]{62}$/.test(rest)) continue;
      const st = statSync(join(dir, name, rest));
      found.push([name + rest, { digest: name + rest, kind: "blob", size: st.size, used: st.mtimeMs, touched: st.mtimeMs }]);
    }
  }
  for (const name of readdirSync(treeDir)) {
    if (!DIGEST_PATTERN.test(name)) continue;
    const st = statSync(join(treeDir, name));
    found.push([entryKey("tree", name), { digest: name, kind: "tree", size: st.size, used: st.mtimeMs, touched: st.mtimeMs }]);
  }
  const db: Database = await openDatabase(join(dir, ".pins"));
  // A pack write that failed (the disk full, say) took blobs the store had counted as held.
  const lost = (digests: string[]): void => {
    for (const digest of digests) {
      const entry = entries.get(digest);
      if (entry?.packed !== true) continue;
      entries.delete(digest);
      usedBytes -= entry.size;
    }
  };
  const { packs, found: packed } = await BlobPacks.open(join(dir, ".packs"), db, fsync, lost);
  const asFiles = new Set(found.map(([key]) => key));
  for (const blob of packed) {
    // Held both ways only if the packing threshold changed between versions: the file is kept.
    if (asFiles.has(blob.digest)) packs.drop(blob.digest);
    else found.push([blob.digest, { digest: blob.digest, kind: "blob", size: blob.size, used: blob.used, touched: blob.used, packed: true }]);
  }
  found.sort((a, b) => a[1].used - b[1].used);
  let usedBytes = 0;
  for (const [key, entry] of found) {
    entries.set(key, entry);
    usedBytes += entry.size;
  }

  const holders = new Map<string, Set<string>>();
  const refs = new Map<string, number>();
  // Pin keys start with their holder's first character; the pack index's keys start with NUL.
  for await (const key of db.keys({ gte: "\x01" })) {
    const cut = key.lastIndexOf("\0");
    const holder = key.slice(0, cut);
    const digest = key.slice(cut + 1);
    let set = holders.get(holder);
    if (set === undefined) holders.set(holder, (set = new Set()));
    set.add(digest);
    refs.set(digest, (refs.get(digest) ?? 0) + 1);
  }

  /** Pin batches, one after another: LevelDB may apply two batches in flight in either order, and a pin and an unpin of one key must land as called. */
  let pinWrites: Promise<unknown> = Promise.resolve();
  const inOrder = (write: () => Promise<void>): Promise<void> => {
    const done = pinWrites.then(write, write);
    pinWrites = done.catch(() => undefined);
    return done;
  };
  /** Writes in progress by digest: a second write of the same bytes waits for the first. */
  const writing = new Map<string, Promise<void>>();
  const partials = new Map<string, OpenPartial>();
  /**
   * Partial blobs on disk and their sizes, least recently written first: a
   * fetch asks for the offset of every blob it lacks, and most have none. A
   * peer can leave the start of every blob of a tree behind, so they are
   * bounded ({@link makePartialRoom}).
   */
  const partialSizes = new Map<string, number>();
  let partialBytes = 0;
  const maxPartialBytes = quotaBytes / 4;
  const charged = (size: number): number => Math.max(size, PARTIAL_BLOCK_BYTES);
  const forgetPartial = (digest: string): void => {
    const size = partialSizes.get(digest);
    if (size === undefined) return;
    partialSizes.delete(digest);
    partialBytes -= charged(size);
  };
  const notePartial = (digest: string, size: number): void => {
    forgetPartial(digest);
    partialSizes.set(digest, size);
    partialBytes += charged(size);
  };
  const leftPartials = readdirSync(partialDir)
    .filter((name) => DIGEST_PATTERN.test(name))
    .map((name) => ({ name, st: statSync(join(partialDir, name)) }))
    .sort((a, b) => a.st.mtimeMs - b.st.mtimeMs);
  for (const { name, st } of leftPartials) notePartial(name, st.size);
  /** Files being written get names unique in this process; `.tmp` is emptied at open, and the store has one process at a time. */
  let tmpCount = 0;
  /** One operation at a time on each partial blob. */
  const partialLocks = new KeyedTurns();
  const madeDirs = new Set<string>();
  const writer = new FileWriter();

  const blobPath = (digest: string): string => join(dir, digest.slice(0, 2), digest.slice(2));
  const pathOf = (digest: string, kind: Kind): string => (kind === "blob" ? blobPath(digest) : join(treeDir, digest));

  const used = (entry: Entry): void => {
    const key = entryKey(entry.kind, entry.digest);
    entries.delete(key);
    const now = Date.now();
    entry.used = now;
    entries.set(key, entry);
    if (now - entry.touched < TOUCH_INTERVAL_MS) return;
    entry.touched = now;
    if (entry.packed === true) return packs.touch(entry.digest, now);
    const at = new Date(now);
    utimes(pathOf(entry.digest, entry.kind), at, at).catch(() => undefined);
  };

  /** Rewrites the packs at least `minDeadFraction` dead; a blob found damaged on the way is gone, as a damaged blob read is. */
  const compact = async (minDeadFraction: number): Promise<void> => {
    for (const digest of await packs.compact(minDeadFraction)) {
      const entry = entries.get(digest);
      if (entry === undefined) continue;
      entries.delete(digest);
      usedBytes -= entry.size;
    }
  };

  /**
   * Removes unpinned entries, least recently used first, down to `targetBytes`;
   * when packed blobs went, the packs a quarter dead are rewritten, so dead
   * space stays within a quarter of the packs under the quota's evictions too.
   */
  const evict = async (targetBytes: number): Promise<GcResult> => {
    const result: GcResult = { removed: 0, freedBytes: 0, partials: 0 };
    let packed = false;
    for (const [key, entry] of [...entries]) {
      if (usedBytes <= targetBytes) break;
      if ((refs.get(entry.digest) ?? 0) > 0 || entries.get(key) !== entry) continue;
      entries.delete(key);
      usedBytes -= entry.size;
      result.removed++;
      result.freedBytes += entry.size;
      if (entry.packed === true) {
        packs.drop(entry.digest);
        packed = true;
      } else await rm(pathOf(entry.digest, entry.kind), { force: true });
    }
    if (packed) await compact(0.25);
    return result;
  };

  /** Makes room for `size` more bytes (evicting), or throws QUOTA; the room is counted as used at once. */
  const reserve = async (digest: string, size: number): Promise<void> => {
    // Writes running meanwhile may take the room an eviction made while it awaited (a file's removal, a pack's rewrite): evict again.
    let removed = 1;
    while (usedBytes + size > quotaBytes && removed > 0) ({ removed } = await evict(quotaBytes - size));
    if (usedBytes + size > quotaBytes) {
      throw new CoderClawError("QUOTA", `blob store quota exceeded: storing ${digest} (${size} bytes) needs ${usedBytes + size - quotaBytes} bytes more than the quota of ${quotaBytes} allows, and every other entry is pinned`);
    }
    usedBytes += size;
  };

  /** Moves a fully written, synced file into place as `digest`. */
  const commit = async (digest: string, kind: Kind, size: number, from: string): Promise<void> => {
    await reserve(digest, size);
    try {
      const target = pathOf(digest, kind);
      if (kind === "blob") {
        const sub = join(dir, digest.slice(0, 2));
        if (!madeDirs.has(sub)) {
          mkdirSync(sub, { recursive: true, mode: 0o700 });
          madeDirs.add(sub);
        }
      }
      renameSync(from, target);
    } catch (err) {
      usedBytes -= size;
      throw err;
    }
    const now = Date.now();
    entries.set(entryKey(kind, digest), { digest, kind, size, used: now, touched: now });
  };

  /** Appends the small blob `digest` to a pack and holds it from now on; its room under the quota is the caller's to have counted. */
  const appendPacked = (digest: string, bytes: Uint8Array): void => {
    const now = Date.now();
    packs.append(digest, bytes, now);
    entries.set(entryKey("blob", digest), { digest, kind: "blob", size: bytes.byteLength, used: now, touched: now, packed: true });
  };

  /**
   * Appends the small blob `digest` to a pack at once when nothing stands in
   * the way (not held, not being written, room under the quota, no sync asked
   * for): the common case of a fetch, without a promise per blob. False when
   * {@link writeFile} has to do it.
   */
  const packAtOnce = (digest: string, bytes: Uint8Array): boolean => {
    if (fsync || bytes.byteLength >= PACK_BELOW_BYTES || usedBytes + bytes.byteLength > quotaBytes) return false;
    const key = entryKey("blob", digest);
    if (entries.has(key) || writing.has(key)) return false;
    appendPacked(digest, bytes);
    usedBytes += bytes.byteLength;
    return true;
  };

  const writeFile = async (digest: string, kind: Kind, bytes: Uint8Array): Promise<void> => {
    const key = entryKey(kind, digest);
    const existing = entries.get(key);
    if (existing !== undefined) return used(existing);
    const pending = writing.get(key);
    if (pending !== undefined) return pending;
    const tmp = join(tmpDir, `${digest}.${(tmpCount++).toString(36)}`);
    const done = (async () => {
      if (kind === "blob" && bytes.byteLength < PACK_BELOW_BYTES) {
        await reserve(digest, bytes.byteLength);
        try {
          appendPacked(digest, bytes);
        } catch (err) {
          usedBytes -= bytes.byteLength;
          throw err;
        }
        if (fsync) await packs.flush();
        return;
      }
      if (!fsync && kind === "blob") {
        // Off the event loop, reserving first: the worker renames the file into place.
        await reserve(digest, bytes.byteLength);
        const sub = join(dir, digest.slice(0, 2));
        const makeDir = !madeDirs.has(sub);
        if (makeDir) madeDirs.add(sub);
        try {
          await writer.write(tmp, blobPath(digest), bytes, makeDir ? sub : undefined);
        } catch (err) {
          usedBytes -= bytes.byteLength;
          if (makeDir) madeDirs.delete(sub);
          throw err;
        }
        const now = Date.now();
        entries.set(key, { digest, kind, size: bytes.byteLength, used: now, touched: now });
        return;
      }
      if (fsync) {
        const file = await open(tmp, "wx", 0o600);
        try {
          await file.writeFile(bytes);
          await file.sync();
        } finally {
          await file.close();
        }
      } else writeWhole(tmp, bytes);
      try {
        await commit(digest, kind, bytes.byteLength, tmp);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    })().finally(() => writing.delete(key));
    writing.set(key, done);
    return done;
  };

  /** The open partial of `digest`, re-hashing what an earlier process left on disk. */
  const openPartial = async (digest: string): Promise<OpenPartial> => {
    const held = partials.get(digest);
    if (held !== undefined) return held;
    const path = join(partialDir, digest);
    const prefix = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return new Uint8Array(0);
      throw err;
    });
    if (prefix.byteLength > MAX_BLOB_BYTES) {
      await rm(path, { force: true });
      forgetPartial(digest);
      return openPartial(digest);
    }
    const file = await open(path, "a", 0o600);
    notePartial(digest, prefix.byteLength);
    const partial: OpenPartial = { file, hash: createHash("sha256").update(prefix), size: prefix.byteLength };
    partials.set(digest, partial);
    return partial;
  };

  const dropPartial = async (digest: string): Promise<void> => {
    const partial = partials.get(digest);
    partials.delete(digest);
    await partial?.file.close().catch(() => undefined);
    await rm(join(partialDir, digest), { force: true });
    forgetPartial(digest);
  };

  /**
   * Makes room for partial blob `digest` to grow to `size` bytes within the
   * partials' bound by removing the least recently written idle ones (each is
   * only a head start on a fetch); throws QUOTA when that is not enough.
   * Synchronous, so no append to a partial being removed can slip in.
   */
  const makePartialRoom = (digest: string, size: number): void => {
    const own = partialSizes.get(digest);
    let over = partialBytes - (own === undefined ? 0 : charged(own)) + charged(size) - maxPartialBytes;
    for (const [other, otherSize] of partialSizes) {
      if (over <= 0 || charged(size) > maxPartialBytes) break;
      if (other === digest || partialLocks.has(other)) continue;
      rmSync(join(partialDir, other), { force: true });
      forgetPartial(other);
      over -= charged(otherSize);
    }
    if (over > 0) throw new CoderClawError("QUOTA", `partial blob ${digest}: ${size} bytes do not fit the ${maxPartialBytes} bytes partial blobs may take (a quarter of the quota), ${partialBytes} taken by others being written`);
  };

  const store: BlobStore = {
    dir,
    quotaBytes,

    async put(bytes) {
      if (bytes.byteLength > MAX_BLOB_BYTES) throw new CoderClawError("INVALID_INPUT", `blob of ${bytes.byteLength} bytes exceeds the limit of ${MAX_BLOB_BYTES}`);
      const digest = sha256Hex(bytes);
      await writeFile(digest, "blob", bytes);
      return digest;
    },

    async putVerified(digest, bytes) {
      verify(digest, bytes);
      await writeFile(digest, "blob", bytes);
    },

    async putVerifiedAll(blobs) {
      for (const [digest, bytes] of blobs) verify(digest, bytes);
      const slow: Array<Promise<void>> = [];
      let failed: { error: unknown } | undefined;
      for (const [digest, bytes] of blobs) {
        try {
          if (!packAtOnce(digest, bytes)) slow.push(writeFile(digest, "blob", bytes));
        } catch (error) {
          // A pack that cannot be written to (its file could not be opened): the writes begun are still waited for, so none fails unheard.
          failed = { error };
          break;
        }
      }
      const settled = await Promise.allSettled(slow);
      if (failed !== undefined) throw failed.error;
      for (const outcome of settled) if (outcome.status === "rejected") throw outcome.reason;
    },

    async read(digest) {
      return store.readSync(digest);
    },

    readSync(digest) {
      if (!isDigest(digest)) return undefined;
      const entry = entries.get(digest);
      if (entry === undefined) return undefined;
      let bytes: Uint8Array | undefined;
      try {
        bytes = entry.packed === true ? packs.read(digest) : readFileSync(blobPath(digest));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
      if (bytes === undefined || sha256Hex(bytes) !== digest) {
        // Damaged on disk (or lost to a power cut before it was synced): it reads as missing and can be fetched again.
        if (entries.get(digest) === entry) {
          entries.delete(digest);
          usedBytes -= entry.size;
          if (entry.packed === true) packs.drop(digest);
          else rmSync(blobPath(digest), { force: true });
        }
        return undefined;
      }
      used(entry);
      return bytes;
    },

    locate(digest) {
      if (!isDigest(digest)) return undefined;
      const entry = entries.get(digest);
      if (entry === undefined) return undefined;
      const at = entry.packed === true ? packs.locate(digest) : { file: blobPath(digest), offset: 0, size: entry.size };
      if (at === undefined) return undefined;
      used(entry);
      return { ...at, digest };
    },

    has(digest) {
      return entries.has(digest);
    },

    async missing(digests) {
      const out = new Set<string>();
      for (const digest of digests) {
        checkDigest(digest);
        if (!store.has(digest)) out.add(digest);
      }
      return [...out];
    },

    async partialOffset(digest) {
      checkDigest(digest);
      const held = partials.get(digest);
      if (held !== undefined) return held.size;
      if (!partialSizes.has(digest)) return 0;
      try {
        return (await stat(join(partialDir, digest))).size;
      } catch {
        return 0;
      }
    },

    appendPartial(digest, offset, bytes, opts = {}) {
      checkDigest(digest);
      return partialLocks.run(digest, async () => {
        if (store.has(digest)) {
          await dropPartial(digest);
          return "complete" as const;
        }
        const partial = await openPartial(digest);
        try {
          if (offset !== partial.size) throw new CoderClawError("INVALID_INPUT", `blob ${digest}: write at offset ${offset} does not continue the partial blob of ${partial.size} bytes`);
          if (partial.size + bytes.byteLength > MAX_BLOB_BYTES) {
            await dropPartial(digest);
            throw new DigestMismatchError(digest, `${partial.size + bytes.byteLength} bytes exceed the blob limit of ${MAX_BLOB_BYTES}`);
          }
          try {
            makePartialRoom(digest, partial.size + bytes.byteLength);
          } catch (err) {
            // Kept, it would fail each fetch that resumes it: the blob is asked for whole instead.
            await dropPartial(digest);
            throw err;
          }
          // Counted before the write: appends to other partials meanwhile make room with these bytes taken.
          notePartial(digest, partial.size + bytes.byteLength);
          try {
            await partial.file.write(bytes);
          } catch (err) {
            notePartial(digest, partial.size);
            throw err;
          }
          partial.hash.update(bytes);
          partial.size += bytes.byteLength;
          if (partial.hash.copy().digest("hex") === digest) {
            partials.delete(digest);
            try {
              if (fsync) await partial.file.sync();
            } finally {
              await partial.file.close();
            }
            try {
              await commit(digest, "blob", partial.size, join(partialDir, digest));
            } catch (err) {
              await rm(join(partialDir, digest), { force: true });
              throw err;
            } finally {
              forgetPartial(digest);
            }
            return "complete" as const;
          }
          if (opts.last === true) {
            const size = partial.size;
            await dropPartial(digest);
            throw new DigestMismatchError(digest, `the ${size} bytes received do not hash to it`);
          }
          return "partial" as const;
        } finally {
          // Open only while written to: a peer can leave thousands of partial blobs behind, and must not hold a file open for each.
          if (partials.get(digest) === partial) {
            partials.delete(digest);
            await partial.file.close().catch(() => undefined);
          }
        }
      });
    },

    discardPartial(digest) {
      checkDigest(digest);
      return partialLocks.run(digest, () => dropPartial(digest));
    },

    async pin(holder, digests) {
      checkHolder(holder);
      let set = holders.get(holder);
      const adding = new Set<string>();
      for (const digest of digests) {
        checkDigest(digest);
        if (set?.has(digest) !== true) adding.add(digest);
      }
      if (adding.size === 0) return;
      const added = [...adding];
      if (set === undefined) holders.set(holder, (set = new Set()));
      // Counted before the write so a gc running meanwhile keeps them; taken back if the write fails.
      for (const digest of added) {
        set.add(digest);
        refs.set(digest, (refs.get(digest) ?? 0) + 1);
      }
      try {
        await inOrder(() =>
          db.batch(
            added.map((digest) => ({ type: "put" as const, key: pinKey(holder, digest), value: new Uint8Array(0) })),
            { sync: true },
          ),
        );
      } catch (err) {
        for (const digest of added) {
          set.delete(digest);
          const n = (refs.get(digest) ?? 1) - 1;
          if (n === 0) refs.delete(digest);
          else refs.set(digest, n);
        }
        if (set.size === 0) holders.delete(holder);
        throw err;
      }
    },

    holders: () => [...holders.keys()],

    async unpin(holder) {
      checkHolder(holder);
      const set = holders.get(holder);
      if (set === undefined) return;
      // Forgotten at once, so a pin of this holder made meanwhile is written anew (after this batch: they land in order).
      // A gc meanwhile may drop these blobs before the deletion is durable; after a crash the pins are back and the blobs read as missing.
      holders.delete(holder);
      const digests = [...set];
      for (const digest of digests) {
        const n = (refs.get(digest) ?? 1) - 1;
        if (n === 0) refs.delete(digest);
        else refs.set(digest, n);
      }
      try {
        await inOrder(() =>
          db.batch(
            digests.map((digest) => ({ type: "del" as const, key: pinKey(holder, digest) })),
            { sync: true },
          ),
        );
      } catch (err) {
        let now = holders.get(holder);
        if (now === undefined) holders.set(holder, (now = new Set()));
        for (const digest of digests) {
          if (now.has(digest)) continue;
          now.add(digest);
          refs.set(digest, (refs.get(digest) ?? 0) + 1);
        }
        throw err;
      }
    },

    pinnedBy(holder) {
      return holders.get(holder) ?? new Set();
    },

    refCount(digest) {
      return refs.get(digest) ?? 0;
    },

    async putTree(treeId, bytes) {
      checkDigest(treeId, "tree id");
      if (bytes.byteLength > MAX_TREE_BYTES) throw new DigestMismatchError(treeId, `manifest of ${bytes.byteLength} bytes exceeds the limit of ${MAX_TREE_BYTES}`);
      const actual = sha256Hex(bytes);
      if (actual !== treeId) throw new DigestMismatchError(treeId, `manifest bytes hash to ${actual}`);
      await writeFile(treeId, "tree", bytes);
    },

    async getTree(treeId) {
      if (!DIGEST_PATTERN.test(treeId)) return undefined;
      const entry = entries.get(entryKey("tree", treeId));
      if (entry === undefined) return undefined;
      const bytes = await readFile(join(treeDir, treeId)).catch(() => undefined);
      if (bytes !== undefined) used(entry);
      return bytes;
    },

    async gc(options = {}) {
      const result = await evict(options.downToBytes ?? quotaBytes);
      // Told to remove everything unpinned (`task clean`), every pack with dead space is rewritten.
      await compact(options.downToBytes === 0 ? 0 : 0.25);
      const before = Date.now() - partialMaxAgeMs;
      for (const name of await readdir(partialDir)) {
        if (!DIGEST_PATTERN.test(name) || partials.has(name) || partialLocks.has(name)) continue;
        const st = await stat(join(partialDir, name)).catch(() => undefined);
        if (st === undefined || st.mtimeMs >= before) continue;
        await rm(join(partialDir, name), { force: true });
        forgetPartial(name);
        result.partials++;
      }
      return result;
    },

    usage() {
      return { bytes: usedBytes, entries: entries.size };
    },

    async close() {
      await Promise.allSettled([...writing.values()]);
      await partialLocks.settled();
      await pinWrites;
      await writer.close();
      await packs.close();
      for (const digest of [...partials.keys()]) {
        const partial = partials.get(digest);
        partials.delete(digest);
        await partial?.file.close().catch(() => undefined);
      }
      await db.close();
    },
  };
  return store;
}
