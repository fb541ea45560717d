import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { blobDigest, CHUNK_SIZE, type ManifestFileEntry } from "./manifest.js";
import { gitEnv } from "./tree-listing.js";

/** Where git may still hold a file's snapshotted content: a blob id, or a revision and path such as `HEAD:./src/a.ts`. */
export type GitCandidate = string;

/** A `cat-file --batch` with nothing asked of it for this long exits; the next read starts another. */
const IDLE_MS = 5_000;
/** Bytes read ahead of the reader before git's output is paused. */
const READ_AHEAD_BYTES = 8 * 1024 * 1024;

/**
 * Reads file contents back out of a repository's object store, for a snapshot
 * whose working file changed after it was taken: git keeps the blob the index
 * or a commit named, whatever the working tree does since. Objects are read
 * through one `git cat-file --batch` (a tree whose files all changed, after a
 * checkout of another branch say, costs one process, not one per file),
 * started on demand and ended when idle. Each candidate is read chunk by
 * chunk, every chunk checked against the entry's digest before it is handed
 * on, so a candidate holding other bytes yields none of them.
 */
export class GitObjects {
  readonly #root: string;
  #batch: Batch | undefined;
  /** Reads one after another: the batch answers in the order it is asked. */
  #turn: Promise<unknown> = Promise.resolve();

  /** @param root The work tree (or a directory under it) the snapshot was taken in. */
  constructor(root: string) {
    this.#root = root;
  }

  /**
   * Reads `entry`'s content from the first candidate holding exactly it,
   * handing each checked chunk to `take` in order (awaited before the next).
   * Answers whether one did (every chunk was then taken).
   */
  read(entry: ManifestFileEntry, candidates: readonly GitCandidate[], take: (digest: string, bytes: Uint8Array) => Promise<void>): Promise<boolean> {
    const result = this.#turn.then(async () => {
      for (const candidate of new Set(candidates)) {
        // The batch reads one name a line; such a name cannot be asked for.
        if (candidate.includes("\n")) continue;
        if (await this.#candidate(entry, candidate, take)) return true;
      }
      return false;
    });
    this.#turn = result.catch(() => undefined);
    return result;
  }

  /** Ends the batch process, if one runs. */
  close(): void {
    this.#batch?.end();
    this.#batch = undefined;
  }

  async #candidate(entry: ManifestFileEntry, candidate: GitCandidate, take: (digest: string, bytes: Uint8Array) => Promise<void>): Promise<boolean> {
    if (this.#batch === undefined || this.#batch.ended) this.#batch = new Batch(this.#root);
    const batch = this.#batch;
    try {
      const size = await batch.ask(candidate);
      if (size !== entry.size) {
        if (size !== undefined) await batch.skip(size + 1);
        return false;
      }
      let index = 0;
      let matching = true;
      for (let offset = 0; offset < size; offset += CHUNK_SIZE, index++) {
        const bytes = await batch.take(Math.min(CHUNK_SIZE, size - offset));
        matching &&= blobDigest(bytes) === entry.chunks[index];
        // A wrong chunk ends the candidate, but its remaining bytes still have to be read past.
        if (matching) await take(entry.chunks[index]!, bytes);
      }
      await batch.skip(1);
      return matching && index === entry.chunks.length;
    } catch {
      // The process died or answered out of shape: the next read starts another.
      batch.end();
      return false;
    } finally {
      batch.idle(IDLE_MS);
    }
  }
}

/** One `git cat-file --batch` and what it has sent that has not been read yet. */
class Batch {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  readonly #chunks: Buffer[] = [];
  #buffered = 0;
  #waiting: (() => void) | undefined;
  #idle: NodeJS.Timeout | undefined;
  /** Set as soon as the process is told to end or ends by itself: a batch ended is never asked again. */
  ended = false;

  constructor(root: string) {
    this.#child = spawn("git", ["cat-file", "--batch"], { cwd: root, env: gitEnv(), stdio: ["pipe", "pipe", "ignore"] });
    const ended = (): void => {
      this.ended = true;
      this.#wake();
    };
    this.#child.once("error", ended);
    this.#child.once("close", ended);
    this.#child.stdin.on("error", () => undefined);
    this.#child.stdout.on("data", (data: Buffer) => {
      this.#chunks.push(data);
      this.#buffered += data.byteLength;
      if (this.#buffered > READ_AHEAD_BYTES) this.#child.stdout.pause();
      this.#wake();
    });
  }

  /** An idle batch must not keep the process alive (it ends itself after a while anyway); one being read must. */
  #hold(held: boolean): void {
    const handles = [this.#child, this.#child.stdin, this.#child.stdout] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
    for (const handle of handles) (held ? handle.ref : handle.unref)?.call(handle);
  }

  /** Asks for `name`: its size when it is a blob; undefined when git lacks it or it is not a blob. */
  async ask(name: string): Promise<number | undefined> {
    clearTimeout(this.#idle);
    this.#hold(true);
    this.#child.stdin.write(`${name}\n`);
    const line = (await this.#line()).toString("utf8");
    // `<oid> <type> <size>`, or `<name> missing` / `<name> ambiguous` (nothing follows those).
    const header = /^[0-9a-f]{40,64} (\S+) (\d+)$/.exec(line);
    if (header === null) return undefined;
    const size = Number(header[2]);
    if (header[1] !== "blob") {
      await this.skip(size + 1);
      return undefined;
    }
    return size;
  }

  /** The next `n` bytes. */
  async take(n: number): Promise<Buffer> {
    await this.#until(() => this.#buffered >= n);
    // Copied out of as many of the pipe's buffers as it spans, not all that were read ahead.
    const out = Buffer.allocUnsafe(n);
    for (let filled = 0; filled < n; ) {
      const chunk = this.#chunks[0]!;
      const k = Math.min(chunk.byteLength, n - filled);
      chunk.copy(out, filled, 0, k);
      filled += k;
      if (k === chunk.byteLength) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(k);
    }
    this.#buffered -= n;
    if (this.#buffered <= READ_AHEAD_BYTES) this.#child.stdout.resume();
    return out;
  }

  /** Reads past the next `n` bytes. */
  async skip(n: number): Promise<void> {
    for (let left = n; left > 0; left -= CHUNK_SIZE) await this.take(Math.min(CHUNK_SIZE, left));
  }

  /** Ends the process after `ms` with nothing asked. */
  idle(ms: number): void {
    clearTimeout(this.#idle);
    this.#hold(false);
    this.#idle = setTimeout(() => this.end(), ms).unref();
  }

  end(): void {
    clearTimeout(this.#idle);
    this.ended = true;
    this.#child.stdin.end();
    this.#child.kill();
    this.#wake();
  }

  async #line(): Promise<Buffer> {
    let at = -1;
    await this.#until(() => (at = this.#chunks.findIndex((c) => c.includes(10))) >= 0);
    const before = this.#chunks.slice(0, at).reduce((n, c) => n + c.byteLength, 0);
    const length = before + this.#chunks[at]!.indexOf(10);
    const line = await this.take(length);
    await this.take(1);
    return line;
  }

  async #until(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.ended) throw new Error("git cat-file ended");
      await new Promise<void>((resolve) => (this.#waiting = resolve));
    }
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }
}
