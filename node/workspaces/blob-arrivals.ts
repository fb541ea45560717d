import type { BlobSink } from "../../protocols/blobs/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";

/** Bytes of blobs kept for the reader after they arrived ahead of it; past that, it reads them from the store. */
export const HELD_MAX_BYTES = 64 * 1024 * 1024;

interface Waiter {
  resolve: (bytes: Uint8Array) => void;
  reject: (err: Error) => void;
}

/**
 * Lets a tree be materialised while its blobs are still arriving: {@link sink}
 * stores each fetched blob in `store` as the fetch hands it over, and
 * {@link read} answers a blob at once when the store holds it, or when it
 * arrives. A blob the reader is waiting for, or one that arrived ahead of it
 * (up to {@link HELD_MAX_BYTES} of them), is handed over as received
 * (verified by the store on the way in), not read back and hashed again. Once
 * the fetch is over ({@link end}, {@link fail}) a blob still missing fails its reader.
 */
export class BlobArrivals {
  readonly #store: BlobStore;
  readonly #tree: string;
  readonly #waiting = new Map<string, Waiter[]>();
  /** Blobs that arrived before they were asked for, each handed over once. */
  readonly #held = new Map<string, Uint8Array>();
  #heldBytes = 0;
  #over: Error | "done" | undefined;

  constructor(store: BlobStore, tree: string) {
    this.#store = store;
    this.#tree = tree;
  }

  /** Where the fetch puts what it receives: the store, then whoever waits for it. */
  readonly sink: BlobSink = {
    missing: (digests) => this.#store.missing(digests),
    partialOffset: (digest) => this.#store.partialOffset(digest),
    putVerifiedAll: async (blobs) => {
      await this.#store.putVerifiedAll(blobs);
      for (const [digest, bytes] of blobs) this.#arrived(digest, bytes);
    },
    appendPartial: async (digest, offset, bytes, options) => {
      const state = await this.#store.appendPartial(digest, offset, bytes, options);
      if (state === "complete" && this.#waiting.has(digest)) {
        const whole = this.#store.readSync(digest);
        if (whole !== undefined) this.#arrived(digest, whole);
      }
      return state;
    },
  };

  /** The blob `digest`, checked against it: from the store, or once it arrives. */
  read(digest: string): Uint8Array | Promise<Uint8Array> {
    const early = this.#held.get(digest);
    if (early !== undefined) {
      this.#held.delete(digest);
      this.#heldBytes -= early.byteLength;
      return early;
    }
    const held = this.#store.readSync(digest);
    if (held !== undefined) return held;
    if (this.#over !== undefined) throw this.#missing(digest);
    return new Promise((resolve, reject) => {
      const waiters = this.#waiting.get(digest);
      if (waiters === undefined) this.#waiting.set(digest, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
    });
  }

  /** Whether `digest` arrived ahead of its reader and is held for it in memory. */
  holds(digest: string): boolean {
    return this.#held.has(digest);
  }

  /** The fetch finished: readers of blobs that did not come fail. */
  end(): void {
    this.#finish("done");
  }

  /** The fetch failed with `err`: so does every reader still waiting. */
  fail(err: Error): void {
    this.#finish(err);
  }

  #finish(how: Error | "done"): void {
    this.#over ??= how;
    if (how !== "done") {
      this.#held.clear();
      this.#heldBytes = 0;
    }
    for (const [digest, waiters] of this.#waiting) {
      const held = this.#store.readSync(digest);
      for (const waiter of waiters) {
        if (held !== undefined) waiter.resolve(held);
        else waiter.reject(how === "done" ? this.#missing(digest) : how);
      }
    }
    this.#waiting.clear();
  }

  #arrived(digest: string, bytes: Uint8Array): void {
    const waiters = this.#waiting.get(digest);
    if (waiters === undefined) {
      if (this.#over === undefined && !this.#held.has(digest) && this.#heldBytes + bytes.byteLength <= HELD_MAX_BYTES) {
        this.#held.set(digest, bytes);
        this.#heldBytes += bytes.byteLength;
      }
      return;
    }
    this.#waiting.delete(digest);
    for (const waiter of waiters) waiter.resolve(bytes);
  }

  #missing(digest: string): Error {
    return this.#over instanceof Error ? this.#over : new CoderClawError("NOT_FOUND", `blob ${digest} of tree ${this.#tree} is not held here`);
  }
}
