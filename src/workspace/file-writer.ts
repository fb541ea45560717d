import { Worker } from "node:worker_threads";

/** One file to write: created exclusively at `tmp` with `bytes`, then renamed to `target`; `dir` is made first when given. */
interface Job {
  id: number;
  tmp: string;
  target: string;
  bytes: Uint8Array;
  dir?: string;
}

interface Done {
  id: number;
  error?: string;
  code?: string;
}

// Plain JavaScript run as the worker's script, so the same code serves the
// compiled package and the TypeScript sources the tests run. Each batch of
// jobs is answered with one message.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
parentPort.on("message", (jobs) => {
  const done = [];
  for (const job of jobs) {
    try {
      if (job.dir !== undefined) fs.mkdirSync(job.dir, { recursive: true, mode: 0o700 });
      const fd = fs.openSync(job.tmp, "wx", 0o600);
      try {
        for (let at = 0; at < job.bytes.byteLength; ) at += fs.writeSync(fd, job.bytes, at, job.bytes.byteLength - at);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(job.tmp, job.target);
      done.push({ id: job.id });
    } catch (err) {
      try { fs.rmSync(job.tmp, { force: true }); } catch {}
      done.push({ id: job.id, error: String((err && err.message) || err), code: err && err.code });
    }
  }
  parentPort.postMessage(done);
});
`;

/**
 * Writes whole files on a worker thread, each under a temporary name and then
 * renamed into place, so a reader never sees part of one. A store receiving
 * thousands of small blobs spends most of each on creating the file in the
 * kernel; here that runs beside the event loop (on the machine's other core)
 * instead of on it. Writes asked for in one turn of the event loop go to the
 * worker in one message.
 */
export class FileWriter {
  #worker: Worker | undefined;
  #next = 0;
  #queued: Job[] = [];
  readonly #waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  readonly #idle: Array<() => void> = [];

  /** Resolves once `bytes` are at `target`; `dir` (the target's directory) is made first when given. */
  write(tmp: string, target: string, bytes: Uint8Array, dir?: string): Promise<void> {
    const worker = this.#start();
    const id = this.#next++;
    if (this.#queued.length === 0) queueMicrotask(() => this.#flush(worker));
    this.#queued.push({ id, tmp, target, bytes, ...(dir !== undefined && { dir }) });
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  /** Stops the worker once every write asked for has finished. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    if (this.#waiting.size > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    if (this.#worker === worker) this.#worker = undefined;
    await worker.terminate();
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on("message", (done: Done[]) => {
      for (const { id, error, code } of done) {
        const waiter = this.#waiting.get(id);
        this.#waiting.delete(id);
        if (error === undefined) waiter?.resolve();
        else waiter?.reject(Object.assign(new Error(error), code === undefined ? {} : { code }));
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
    this.#queued = [];
    if (jobs.length === 0) return;
    worker.ref();
    worker.postMessage(jobs);
  }
}
