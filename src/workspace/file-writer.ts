import { Worker } from "node:worker_threads";
import type { FileStamp } from "./materialize.js";

/**
 * One file to write on the worker: either a store's (created exclusively at
 * `tmp`, then renamed to `target`; `dir` made first when given) or a tree's
 * (created exclusively at `create` with `mode`, never through a link, and its
 * stat answered).
 */
type Job = { id: number; bytes: Uint8Array } & Task;

/** What a job does with its bytes: a store's write, a tree's file created, or more bytes at the end of one just created. */
type Task = { tmp: string; target: string; dir?: string } | { create: string; mode: number } | { append: string };

/** A file up to this size goes to the worker in one job; a larger one a chunk at a time, so that only one chunk is ever copied twice. */
const ONE_JOB_BYTES = 8 * 1024 * 1024;

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
parentPort.on("message", (jobs) => {
  const done = [];
  for (const job of jobs) {
    try {
      done.push(job.tmp !== undefined ? put(job) : create(job));
    } catch (err) {
      done.push({ id: job.id, error: String((err && err.message) || err), code: err && err.code });
    }
  }
  parentPort.postMessage(done);
});
`;

/**
 * Writes whole files on a worker thread. A store receiving thousands of small
 * blobs, or a tree of thousands of files being materialised, spends most of
 * each on creating the file in the kernel and copying its bytes there; here
 * that runs beside the event loop (on the machine's other core) instead of on
 * it, and without a round trip through libuv's thread pool per call. Writes
 * asked for in one turn of the event loop go to the worker in one message.
 */
export class FileWriter {
  #worker: Worker | undefined;
  #next = 0;
  #queued: Job[] = [];
  #transfer: ArrayBuffer[] = [];
  readonly #waiting = new Map<number, { resolve: (done: Done) => void; reject: (err: Error) => void }>();
  readonly #idle: Array<() => void> = [];

  /** Resolves once `bytes` are at `target`, written under the temporary name `tmp` first; `dir` (the target's directory) is made first when given. */
  async write(tmp: string, target: string, bytes: Uint8Array, dir?: string): Promise<void> {
    await this.#ask({ tmp, target, ...(dir !== undefined && { dir }) }, bytes, false);
  }

  /**
   * Creates the file `path`, which must not exist (nor be a link), with the
   * bytes of `chunks` and `mode` whatever the umask; answers its stat as
   * written. The chunks are copied as they go to the worker (all at once up
   * to 8 MiB, then one by one), never handed over, so they stay the caller's.
   */
  async create(path: string, mode: number, chunks: readonly Uint8Array[]): Promise<FileStamp> {
    const size = chunks.reduce((n, c) => n + c.byteLength, 0);
    if (size <= ONE_JOB_BYTES) return (await this.#ask({ create: path, mode }, joined(chunks, size), true)).stamp!;
    // Each chunk copied once the one before it is written: a file of a GiB costs a chunk more memory, not a GiB.
    let done = await this.#ask({ create: path, mode }, joined(chunks.slice(0, 1), chunks[0]!.byteLength), true);
    for (const chunk of chunks.slice(1)) done = await this.#ask({ append: path }, joined([chunk], chunk.byteLength), true);
    return done.stamp!;
  }

  /** Stops the worker once every write asked for has finished. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    if (this.#waiting.size > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    if (this.#worker === worker) this.#worker = undefined;
    await worker.terminate();
  }

  /** Queues `job` for the worker; `owned` bytes are handed over (their buffer is this writer's own) instead of copied. */
  #ask(job: Task, bytes: Uint8Array, owned: boolean): Promise<Done> {
    const worker = this.#start();
    const id = this.#next++;
    if (this.#queued.length === 0) queueMicrotask(() => this.#flush(worker));
    this.#queued.push({ ...job, id, bytes });
    if (owned) this.#transfer.push(bytes.buffer as ArrayBuffer);
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on("message", (done: Done[]) => {
      for (const answer of done) {
        const waiter = this.#waiting.get(answer.id);
        this.#waiting.delete(answer.id);
        if (answer.error === undefined) waiter?.resolve(answer);
        else waiter?.reject(Object.assign(new Error(answer.error), answer.code === undefined ? {} : { code: answer.code }));
      }
      if (this.#waiting.size === 0) this.#settled(worker);
    });
    worker.on("error", (err) => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const waiter of this.#waiting.values()) waiter.reject(err);
      this.#waiting.clear();
      this.#settled(worker);
    });
    this.#worker = worker;
    return worker;
  }

  /** Nothing is owed any more: the worker no longer keeps the process alive, and a close waiting for it goes on. */
  #settled(worker: Worker): void {
    worker.unref();
    for (const resume of this.#idle.splice(0)) resume();
  }

  #flush(worker: Worker): void {
    const jobs = this.#queued;
    const transfer = this.#transfer;
    this.#queued = [];
    this.#transfer = [];
    if (jobs.length === 0) return;
    worker.ref();
    worker.postMessage(jobs, transfer);
  }
}

/**
 * The bytes of `chunks` in one buffer of their own, to be handed over rather
 * than cloned: a chunk may be a view into a much larger buffer, all of which a
 * clone would copy, and handing over the caller's own would take it away.
 */
function joined(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
