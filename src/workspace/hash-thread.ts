import { Worker } from "node:worker_threads";
import type { FileStat, GitHash } from "./file-chunks.js";

/** What the thread found of one file: its stat, when it was taken (ms since the epoch), its chunk digests and, when asked for, its git blob id. */
export interface ThreadHashed {
  readonly stat: FileStat;
  readonly statAtMs: number;
  readonly chunks: string[];
  readonly gitOid?: string;
}

/** A file for the thread: its absolute path, and the hash of its git blob id when that is wanted too. */
export type ThreadFile = string | readonly [path: string, git: GitHash];

type Answer = ThreadHashed | { error: string; code?: string };

// Plain JavaScript run as the worker's script (as the file writer's), so the
// same code serves the compiled package and the TypeScript sources the tests
// run. It does for each path what hashFileChunksSync (file-chunks.ts) does:
// opened without following a link or blocking on a fifo, stat'ed through the
// handle before and after reading, read again when it changed meanwhile.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const crypto = require("node:crypto");
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const CHUNK = workerData.chunkSize;
const scratch = Buffer.allocUnsafe(CHUNK);
const same = (a, b) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;
const hash = (path, git) => {
  for (let attempt = 1; ; attempt++) {
    const statAtMs = Date.now();
    const fd = fs.openSync(path, FLAGS);
    try {
      const before = fs.fstatSync(fd);
      if (!before.isFile()) throw new Error(path + " is no longer a regular file");
      const chunks = [];
      const oid = git === undefined ? undefined : crypto.createHash(git).update("blob " + before.size + "\0");
      for (let offset = 0; offset < before.size; ) {
        const length = Math.min(CHUNK, before.size - offset);
        if (fs.readSync(fd, scratch, 0, length, offset) !== length) break;
        chunks.push(crypto.createHash("sha256").update(scratch.subarray(0, length)).digest("hex"));
        if (oid !== undefined) oid.update(scratch.subarray(0, length));
        offset += length;
      }
      if (chunks.length === Math.ceil(before.size / CHUNK) && same(before, fs.fstatSync(fd))) {
        const { size, mode, ino, dev, mtimeMs, ctimeMs } = before;
        return { stat: { size, mode, ino, dev, mtimeMs, ctimeMs }, statAtMs, chunks, ...(oid !== undefined && { gitOid: oid.digest("hex") }) };
      }
      if (attempt >= 3) throw new Error(path + " kept changing while it was read");
    } finally {
      fs.closeSync(fd);
    }
  }
};
parentPort.on("message", (files) => {
  parentPort.postMessage(files.map((file) => {
    try {
      return typeof file === "string" ? hash(file) : hash(file[0], file[1]);
    } catch (err) {
      return { error: String((err && err.message) || err), code: err && err.code };
    }
  }));
});
`;

/**
 * Hashes small files on a second thread while the event loop hashes others:
 * a cold snapshot of a large tree is tens of thousands of open, read, hash and
 * close calls on one thread otherwise, while the submitter's other core
 * waits. Files are handed over in slices, answered in the order given; a
 * second slice queued behind the first keeps the thread busy while the event
 * loop, hashing files of its own, has not yet taken the first one's answer.
 */
export class HashThread {
  readonly #worker: Worker;
  /** Slices handed over and not answered yet, oldest first: the worker answers in order. */
  readonly #pending: Array<{ resolve: (answers: Answer[]) => void; reject: (err: Error) => void }> = [];
  #failed: Error | undefined;

  /** Starts the thread; `chunkSize` is the manifest's chunk size. */
  constructor(chunkSize: number) {
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { chunkSize } });
    this.#worker.on("message", (answers: Answer[]) => this.#pending.shift()?.resolve(answers));
    this.#worker.on("error", (err) => this.#fail(err));
    // A thread that ends without an error (terminated, or out of memory on some versions) answers nothing more.
    this.#worker.on("exit", (code) => this.#fail(new Error(`the hashing thread exited with code ${code}`)));
  }

  #fail(err: Error): void {
    this.#failed ??= err;
    for (const slice of this.#pending.splice(0)) slice.reject(err);
  }

  /** Slices handed over and not answered yet; none once the thread failed. */
  get queued(): number {
    return this.#failed === undefined ? this.#pending.length : Number.POSITIVE_INFINITY;
  }

  /**
   * Hashes `files` (absolute paths, each with the hash of its git blob id
   * when that is wanted too); each answer in order, or the failure of that
   * file (the caller's to throw, as its own error would be). Rejects when the
   * thread itself failed: the slice is the caller's to hash then.
   */
  hash(files: readonly ThreadFile[]): Promise<Array<ThreadHashed | Error>> {
    if (this.#failed !== undefined) return Promise.reject(new Error(`the hashing thread failed: ${this.#failed.message}`));
    return new Promise<Answer[]>((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#worker.postMessage(files);
    }).then((answers) => answers.map((a) => ("error" in a ? Object.assign(new Error(a.error), a.code === undefined ? {} : { code: a.code }) : a)));
  }

  /** Stops the thread; slices not answered yet reject. */
  async close(): Promise<void> {
    this.#fail(new Error("the hashing thread was closed"));
    await this.#worker.terminate();
  }
}
