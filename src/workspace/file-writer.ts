import { Worker } from "node:worker_threads";
import type { FileStamp } from "./materialize.js";

/**
 * One file to write on the worker: either a store's (created exclusively at
 * `tmp`, then renamed to `target`; `dir` made first when given) or a tree's
 * (created exclusively at `create` with `mode`, never through a link, and its
 * stat answered). Its bytes are `length` bytes from `at` of the batch's one
 * buffer, or, for a `copy`, read by the worker from its sources.
 */
type Job = { id: number; at: number; length: number } & Task;

/** A job queued on this side, with the caller's bytes still in pieces. */
type Queued = { id: number; chunks: readonly Uint8Array[]; length: number } & Task;

/**
 * What a job does with its bytes: a store's write, a tree's file created, more
 * bytes at the end of one just created, or a tree's file created from sources.
 */
type Task = { tmp: string; target: string; dir?: string } | { create: string; mode: number } | { append: string } | { copy: string; mode: number; sources: readonly CopySource[] };

/** Bytes a file is copied from: `size` bytes at `offset` of `file`, which must hash (SHA-256, lowercase hex) to `digest`. */
export interface CopySource {
  readonly file: string;
  readonly offset: number;
  readonly size: number;
  readonly digest: string;
}

/** The code of a {@link FileWriter.copy} whose sources could not be read whole or did not hash to their digests; nothing was created. */
export const SOURCE_FAILED = "ESOURCE";

/** A file up to this size goes to the worker in one job; a larger one a chunk at a time, so that only one chunk is ever copied twice. */
const ONE_JOB_BYTES = 8 * 1024 * 1024;
/** Most bytes one {@link FileWriter.copy} takes: the worker holds them at once. */
export const MAX_COPY_BYTES = ONE_JOB_BYTES;
/** Smallest buffer a batch is given. */
const SMALLEST_BUFFER = 64 * 1024;
/** Buffers back from the worker kept for later batches, in bytes. */
const SPARE_BYTES = 32 * 1024 * 1024;
/** Bytes queued that go to a worker at once. */
const FLUSH_BYTES = 16 * 1024 * 1024;
/**
 * Jobs queued that go to a worker at once. A message costs about a millisecond
 * of the event loop while a tree is written (waking a busy worker on two busy
 * cores), whatever it carries: 128 files a message made a ship of 20k files
 * 5% quicker than 64 (bench:workspace, alternated runs). Not more: with 256,
 * the 256 files materialising keeps in flight went to one thread while the
 * other waited, and a re-ship (files copied from the store) took 30% longer.
 */
const BATCH_JOBS = 128;
/** How long the first job queued waits for others, ms. */
const GATHER_MS = 4;

interface Done {
  id: number;
  stamp?: FileStamp;
  error?: string;
  code?: string;
}

// Plain JavaScript run as the worker's script, so the same code serves the
// compiled package and the TypeScript sources the tests run. Each batch of
// jobs is answered with one message.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const crypto = require("node:crypto");
const CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const APPEND = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW;
const writeAll = (fd, bytes) => {
  for (let at = 0; at < bytes.byteLength; ) at += fs.writeSync(fd, bytes, at, bytes.byteLength - at);
};
const put = (job) => {
  try {
    if (job.dir !== undefined) fs.mkdirSync(job.dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(job.tmp, "wx", 0o600);
    try {
      writeAll(fd, job.bytes);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(job.tmp, job.target);
    return { id: job.id };
  } catch (err) {
    try { fs.rmSync(job.tmp, { force: true }); } catch {}
    throw err;
  }
};
const create = (job) => {
  const fd = job.append === undefined ? fs.openSync(job.create, CREATE, job.mode) : fs.openSync(job.append, APPEND);
  try {
    writeAll(fd, job.bytes);
    // The process umask must not decide the mode asked for; with the usual umask it took nothing, and a file costs one call less.
    let st = fs.fstatSync(fd);
    if (job.append === undefined && (st.mode & 0o7777) !== job.mode) {
      fs.fchmodSync(fd, job.mode);
      st = fs.fstatSync(fd);
    }
    return { id: job.id, stamp: { size: st.size, mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } };
  } finally {
    fs.closeSync(fd);
  }
};
// A copy's sources are read and checked before the file is created: a source that moved or went bad leaves nothing behind.
let scratch = Buffer.alloc(0);
const gather = (job, fds) => {
  // At most 8 MiB (the writer refuses more), so the scratch buffer stays small.
  const size = job.sources.reduce((n, s) => n + s.size, 0);
  if (scratch.byteLength < size) scratch = Buffer.allocUnsafeSlow(Math.max(size, 2 * scratch.byteLength));
  let at = 0;
  for (const source of job.sources) {
    let fd = fds.get(source.file);
    if (fd === undefined) fds.set(source.file, (fd = fs.openSync(source.file, "r")));
    for (let got = 0; got < source.size; ) {
      const n = fs.readSync(fd, scratch, at + got, source.size - got, source.offset + got);
      if (n === 0) throw new Error(source.file + " ends before byte " + (source.offset + source.size));
      got += n;
    }
    const digest = crypto.createHash("sha256").update(scratch.subarray(at, at + source.size)).digest("hex");
    if (digest !== source.digest) throw new Error("bytes " + source.offset + "-" + (source.offset + source.size) + " of " + source.file + " do not hash to " + source.digest);
    at += source.size;
  }
  return scratch.subarray(0, size);
};
parentPort.on("message", ({ jobs, buffer }) => {
  const all = new Uint8Array(buffer);
  const done = [];
  const fds = new Map();
  for (const job of jobs) {
    try {
      if (job.copy !== undefined) {
        let bytes;
        try {
          bytes = gather(job, fds);
        } catch (err) {
          // Whatever went wrong with a source (gone, short, other bytes) is one answer: read it the other way.
          throw Object.assign(new Error(String((err && err.message) || err)), { code: ${JSON.stringify(SOURCE_FAILED)} });
        }
        done.push(create({ ...job, create: job.copy, bytes }));
      } else {
        job.bytes = all.subarray(job.at, job.at + job.length);
        done.push(job.tmp !== undefined ? put(job) : create(job));
      }
    } catch (err) {
      done.push({ id: job.id, error: String((err && err.message) || err), code: err && err.code });
    }
  }
  for (const fd of fds.values()) fs.closeSync(fd);
  // The buffer goes back, to carry a later batch: memory the kernel has to hand out afresh costs more than the copy into it.
  parentPort.postMessage({ done, buffer }, [buffer]);
});
`;

/**
 * Writes whole files on a worker thread. A store receiving thousands of small
 * blobs, or a tree of thousands of files being materialised, spends most of
 * each on creating the file in the kernel and copying its bytes there; here
 * that runs beside the event loop (on the machine's other core) instead of on
 * it, and without a round trip through libuv's thread pool per call. Writes
 * go to a worker in batches ({@link BATCH_JOBS} jobs, or what was asked for
 * within {@link GATHER_MS}), a message each, their bytes copied into one
 * buffer that is handed over: a buffer of its own per file (zeroed, then
 * handed over or cloned) cost more than writing it.
 */
export class FileWriter {
  readonly #threads: number;
  /** The workers started, each with the batches posted to it and not answered yet. */
  #workers: Array<{ worker: Worker; posted: number }> = [];
  #next = 0;
  #queued: Queued[] = [];
  #queuedBytes = 0;
  /** The timer that hands the jobs gathered meanwhile over. */
  #gather: ReturnType<typeof setTimeout> | undefined;
  /** Buffers back from the workers, smallest first. */
  #spares: ArrayBuffer[] = [];
  readonly #waiting = new Map<number, { resolve: (done: Done) => void; reject: (err: Error) => void }>();
  readonly #idle: Array<() => void> = [];

  /** `threads`: workers writing at once (default 1); a tree of many files is written faster by two where a core is free. */
  constructor(options: { threads?: number } = {}) {
    this.#threads = Math.max(1, Math.floor(options.threads ?? 1));
  }

  /** Resolves once `bytes` are at `target`, written under the temporary name `tmp` first; `dir` (the target's directory) is made first when given. */
  async write(tmp: string, target: string, bytes: Uint8Array, dir?: string): Promise<void> {
    await this.#ask({ tmp, target, ...(dir !== undefined && { dir }) }, [bytes]);
  }

  /**
   * Creates the file `path`, which must not exist (nor be a link), with the
   * bytes of `chunks` and `mode` whatever the umask; answers its stat as
   * written. The chunks are copied as they go to the worker (all at once up
   * to 8 MiB, then one by one), never handed over, so they stay the caller's.
   */
  async create(path: string, mode: number, chunks: readonly Uint8Array[]): Promise<FileStamp> {
    const size = chunks.reduce((n, c) => n + c.byteLength, 0);
    if (size <= ONE_JOB_BYTES) return (await this.#ask({ create: path, mode }, chunks)).stamp!;
    // Each chunk copied once the one before it is written: a file of a GiB costs a chunk more memory, not a GiB.
    let done = await this.#ask({ create: path, mode }, chunks.slice(0, 1));
    for (const chunk of chunks.slice(1)) done = await this.#ask({ append: path }, [chunk]);
    return done.stamp!;
  }

  /**
   * Creates the file `path` as {@link create} does, with the bytes of
   * `sources` read on the worker, each checked against its digest first: the
   * event loop neither reads nor hashes them. Rejects with code
   * {@link SOURCE_FAILED}, creating nothing, when a source cannot be read
   * whole or does not match its digest.
   */
  async copy(path: string, mode: number, sources: readonly CopySource[]): Promise<FileStamp> {
    if (sources.reduce((n, s) => n + s.size, 0) > MAX_COPY_BYTES) throw new RangeError(`a copy takes at most ${MAX_COPY_BYTES} bytes`);
    return (await this.#ask({ copy: path, mode, sources }, [])).stamp!;
  }

  /** Stops the workers once every write asked for has finished. */
  async close(): Promise<void> {
    if (this.#workers.length === 0) return;
    if (this.#waiting.size > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    const workers = this.#workers.splice(0);
    await Promise.all(workers.map(({ worker }) => worker.terminate()));
  }

  /**
   * Queues `job` with the bytes of `chunks`, which are copied when its batch
   * goes: once {@link BATCH_JOBS} jobs or {@link FLUSH_BYTES} are queued, or
   * {@link GATHER_MS} after the first, to a worker with no batch (or, when none
   * was free, the first to answer). Files asked for one or two at a time, as
   * blobs arrive, went a message each, which cost more than their bytes.
   */
  #ask(job: Task, chunks: readonly Uint8Array[]): Promise<Done> {
    this.#start();
    const id = this.#next++;
    const length = chunks.reduce((n, c) => n + c.byteLength, 0);
    this.#queued.push({ ...job, id, chunks, length });
    this.#queuedBytes += length;
    if (this.#queued.length >= BATCH_JOBS || this.#queuedBytes >= FLUSH_BYTES) this.#flush(this.#workers.reduce((a, b) => (b.posted < a.posted ? b : a)));
    else this.#gather ??= setTimeout(() => {
      this.#gather = undefined;
      this.#flushIdle();
    }, GATHER_MS);
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  /** Starts the workers not running yet. */
  #start(): void {
    while (this.#workers.length < this.#threads) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      const slot = { worker, posted: 0 };
      worker.on("message", ({ done, buffer }: { done: Done[]; buffer: ArrayBuffer }) => {
        this.#spare(buffer);
        for (const answer of done) {
          const waiter = this.#waiting.get(answer.id);
          this.#waiting.delete(answer.id);
          if (answer.error === undefined) waiter?.resolve(answer);
          else waiter?.reject(Object.assign(new Error(answer.error), answer.code === undefined ? {} : { code: answer.code }));
        }
        slot.posted--;
        // Jobs left after the gathering time (no worker was free then) go now.
        if (this.#queued.length > 0 && this.#gather === undefined) this.#flush(slot);
        else if (slot.posted === 0) worker.unref();
        if (this.#waiting.size === 0) this.#settled();
      });
      worker.on("error", (err) => {
        // Which jobs the dead worker held is not known here: every job in progress fails, and the workers start afresh.
        const workers = this.#workers.splice(0);
        for (const other of workers) if (other !== slot) void other.worker.terminate();
        for (const waiter of this.#waiting.values()) waiter.reject(err);
        this.#waiting.clear();
        this.#queued = [];
        this.#queuedBytes = 0;
        this.#settled();
      });
      this.#workers.push(slot);
    }
  }

  /** Nothing is owed any more: a close waiting for it goes on. */
  #settled(): void {
    for (const resume of this.#idle.splice(0)) resume();
  }

  /** Shares what is queued among the workers with no batch. */
  #flushIdle(): void {
    const idle = this.#workers.filter((w) => w.posted === 0);
    const share = Math.ceil(this.#queued.length / Math.max(1, idle.length));
    for (const slot of idle) this.#flush(slot, share);
  }

  /** Hands the first `count` jobs queued (default all) to `slot`'s worker in one batch. */
  #flush(slot: { worker: Worker; posted: number }, count = this.#queued.length): void {
    const queued = this.#queued.splice(0, count);
    if (queued.length === 0) return;
    const bytes = queued.reduce((n, q) => n + q.length, 0);
    this.#queuedBytes -= bytes;
    const all = this.#buffer(bytes);
    let at = 0;
    const jobs: Job[] = queued.map(({ chunks, ...job }) => {
      const start = at;
      for (const chunk of chunks) {
        all.set(chunk, at);
        at += chunk.byteLength;
      }
      return { ...job, at: start };
    });
    slot.worker.ref();
    slot.posted++;
    slot.worker.postMessage({ jobs, buffer: all.buffer }, [all.buffer as ArrayBuffer]);
  }

  /**
   * A buffer of its own (never a pool's: it is handed over) of at least
   * `bytes`, uninitialised: a spare one back from the worker when it is large
   * enough, or a new one, rounded up to a power of two from 64 KiB so that a
   * spare fits the batches that follow.
   */
  #buffer(bytes: number): Buffer {
    const i = this.#spares.findIndex((b) => b.byteLength >= bytes);
    const spare = i < 0 ? undefined : this.#spares.splice(i, 1)[0]!;
    return Buffer.from(spare ?? Buffer.allocUnsafeSlow(Math.max(SMALLEST_BUFFER, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))))).buffer);
  }

  /** Keeps `buffer`, back from the worker, for a later batch: the largest few, up to {@link SPARE_BYTES} in all. */
  #spare(buffer: ArrayBuffer): void {
    if (buffer.byteLength > SPARE_BYTES) return;
    this.#spares.push(buffer);
    this.#spares.sort((a, b) => a.byteLength - b.byteLength);
    let held = this.#spares.reduce((n, b) => n + b.byteLength, 0);
    while (held > SPARE_BYTES) held -= this.#spares.shift()!.byteLength;
  }
}
