import { createHash, type Hash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { blobDigest, CHUNK_SIZE } from "./manifest.js";

/** What a snapshot keeps of a file's stat (a `Stats` is one). */
export interface FileStat {
  readonly size: number;
  readonly mode: number;
  readonly ino: number;
  readonly dev: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

/** A file's chunk digests and the stat they belong to. */
export interface HashedFile {
  readonly stat: FileStat;
  readonly chunks: string[];
  /** The id git gives the same content as a blob, when asked for. */
  readonly gitOid?: string;
}

/** Hashes a file's content as git names a blob: `blob <size>\0` then the bytes. */
function gitBlobHash(size: number, algorithm: GitHash): Hash {
  return createHash(algorithm).update(`blob ${size}\0`);
}

/** The hash a repository names objects with (its ids are 40 or 64 hex digits). */
export type GitHash = "sha1" | "sha256";

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;
const ATTEMPTS = 3;

/**
 * Hashes the regular file at `path` chunk by chunk. The file is opened
 * without following a symlink and stat'ed through the open handle before and
 * after reading; if it changed meanwhile it is read again, and after
 * {@link ATTEMPTS} tries the call fails rather than describe bytes that never
 * existed together.
 */
export async function hashFileChunks(path: string, git?: GitHash): Promise<HashedFile> {
  for (let attempt = 1; ; attempt += 1) {
    const handle = await open(path, READ_FLAGS);
    try {
      const before = await handle.stat();
      if (!before.isFile()) throw new Error(`${path} is no longer a regular file`);
      const size = before.size;
      const buffer = Buffer.allocUnsafe(Math.min(size, CHUNK_SIZE));
      const chunks: string[] = [];
      const oid = git === undefined ? undefined : gitBlobHash(size, git);
      let offset = 0;
      let complete = true;
      while (offset < size) {
        const length = Math.min(CHUNK_SIZE, size - offset);
        const { bytesRead } = await handle.read(buffer, 0, length, offset);
        if (bytesRead !== length) {
          complete = false;
          break;
        }
        chunks.push(blobDigest(buffer.subarray(0, length)));
        oid?.update(buffer.subarray(0, length));
        offset += length;
      }
      const after = await handle.stat();
      if (complete && sameContentStat(before, after)) return { stat: before, chunks, ...(oid !== undefined && { gitOid: oid.digest("hex") }) };
      if (attempt >= ATTEMPTS) throw new Error(`${path} kept changing while it was read`);
    } finally {
      await handle.close();
    }
  }
}

/**
 * {@link hashFileChunks} with synchronous calls, for small files: through the
 * thread pool, opening, stat'ing twice, reading and closing a file of a few
 * KiB costs several times what hashing it does, and a cold snapshot does that
 * for every file of the tree. A fifo put in the file's place since it was
 * listed is opened without blocking, and then refused. `scratch` (at least
 * {@link CHUNK_SIZE} bytes) is read into, so that hashing thousands of files
 * allocates no buffer for each.
 */
export function hashFileChunksSync(path: string, scratch: Buffer, git?: GitHash): HashedFile {
  for (let attempt = 1; ; attempt += 1) {
    const fd = openSync(path, SYNC_READ_FLAGS);
    try {
      const before = fstatSync(fd);
      if (!before.isFile()) throw new Error(`${path} is no longer a regular file`);
      const chunks: string[] = [];
      const oid = git === undefined ? undefined : gitBlobHash(before.size, git);
      for (let offset = 0; offset < before.size; ) {
        const length = Math.min(CHUNK_SIZE, before.size - offset);
        if (readSync(fd, scratch, 0, length, offset) !== length) break;
        chunks.push(blobDigest(scratch.subarray(0, length)));
        oid?.update(scratch.subarray(0, length));
        offset += length;
      }
      const complete = chunks.length === Math.ceil(before.size / CHUNK_SIZE);
      if (complete && sameContentStat(before, fstatSync(fd))) return { stat: before, chunks, ...(oid !== undefined && { gitOid: oid.digest("hex") }) };
      if (attempt >= ATTEMPTS) throw new Error(`${path} kept changing while it was read`);
    } finally {
      closeSync(fd);
    }
  }
}

const SYNC_READ_FLAGS = READ_FLAGS | constants.O_NONBLOCK;

/** Whether two stats of one file show no change of its content between them. */
function sameContentStat(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;
}

/**
 * The `length` bytes at `offset` of the file at `path` if they still hash to
 * `digest`; undefined when the file is gone, shorter, or different now. Read
 * with synchronous calls: a blob server reads thousands of small files, for
 * which three round trips through the thread pool each cost more than the read.
 */
export function readVerifiedChunk(path: string, offset: number, length: number, digest: string): Promise<Uint8Array | undefined> {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch {
    return Promise.resolve(undefined);
  }
  try {
    const buffer = Buffer.allocUnsafeSlow(length);
    const bytesRead = readSync(fd, buffer, 0, length, offset);
    if (bytesRead !== length || blobDigest(buffer) !== digest) return Promise.resolve(undefined);
    return Promise.resolve(new Uint8Array(buffer.buffer, buffer.byteOffset, length));
  } catch {
    return Promise.resolve(undefined);
  } finally {
    closeSync(fd);
  }
}
