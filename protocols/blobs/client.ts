import type { Libp2p, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { CoderClawError } from "../../src/contract/errors.js";
import { errorFromWire } from "../../src/transport/error-wire.js";
import { DigestMismatchError, MAX_BLOB_BYTES, MAX_TREE_BYTES, sha256Hex } from "../../src/workspace/blob-store.js";
import { FramedChannel } from "../framing/channel.js";
import { openStream } from "../framing/dial.js";
import { FrameTimeoutError, FramingError, PeerLimitError, type FramingFailure } from "../framing/errors.js";
import { RequestChannel, type RequestShape } from "../framing/request-channel.js";
import { BLOBS_PROTOCOL, createBlobsCodec, MAX_ITEMS_PER_GET, MAX_WINDOW_BYTES, type BlobsMessage } from "./messages.js";
import { DEFAULT_BYTES_IN_FLIGHT_PER_PEER, DEFAULT_STALL_MS, DEFAULT_TRANSFERS_PER_PEER } from "./server.js";
import { PeerByteCounters, type ByteCounters } from "./wire-counters.js";

/** Blobs one `get` of a fetch names at most (the protocol allows {@link MAX_ITEMS_PER_GET}). */
const BATCH_ITEMS = 128;
/** How long a transfer the server refused as BUSY waits before asking again, ms. */
const BUSY_RETRY_MS = 50;
/** Failures of the framing layer that the peer's own bytes caused (the others are timeouts, limits this side enforces and reports itself, and closes). */
const PEER_FAULTS: ReadonlySet<FramingFailure> = new Set(["oversize", "malformed", "version"]);

/** Where fetched blobs go: the blob store's partial-write API. */
export interface BlobSink {
  missing(digests: Iterable<string>): Promise<string[]>;
  /** Stores whole blobs, each checked against its digest first; one that does not match stores none ({@link DigestMismatchError} names it). */
  putVerifiedAll(blobs: ReadonlyArray<readonly [digest: string, bytes: Uint8Array]>): Promise<void>;
  partialOffset(digest: string): Promise<number>;
  appendPartial(digest: string, offset: number, bytes: Uint8Array, options?: { last?: boolean }): Promise<"partial" | "complete">;
}

/** Progress of {@link BlobClient.fetchBlobs}. */
export interface FetchProgress {
  /** Blobs the store lacked when the fetch started. */
  total: number;
  /** Of them, complete now. */
  done: number;
  /** Blob bytes received so far by this fetch. */
  bytes: number;
}

/** Options of one {@link BlobClient.fetchBlobs}. */
export interface FetchBlobsOptions {
  signal?: AbortSignal;
  /** A grant to present with each request, for a peer other than the tree's submitter (node/workspaces/tree-grants.ts). */
  grant?: Uint8Array;
  onProgress?: (progress: FetchProgress) => void;
}

/** What {@link BlobClient.fetchBlobs} did. */
export interface FetchBlobsResult {
  /** Blobs stored by this fetch. */
  fetched: number;
  /** Blob bytes received (resumed blobs count only what was sent this time). */
  bytes: number;
  /** Blobs the peer does not hold: ask another member. */
  unavailable: string[];
}

/** Options of {@link BlobClient}. */
export interface BlobClientOptions {
  libp2p: Libp2p;
  /** Transfers open at once to one peer. Default 4 (the server's default allowance). */
  maxTransfersPerPeer?: number;
  /** Blob bytes one peer may have in flight to this node, over all transfers. Default 8 MiB. */
  maxBytesInFlightPerPeer?: number;
  /** A peer that sends nothing this long while it owes data is cut off, ms. Default 10 s. */
  stallMs?: number;
  /** Opening a stream gives up after this many ms. Default 10 s. */
  openTimeoutMs?: number;
  /** A peer was cut off (it stalled, flooded or sent bytes that do not match their digest). */
  onPeerError?: (peer: string, error: Error) => void;
}

const shape: RequestShape<BlobsMessage> = {
  answerTo: (m) => (m.t === "data" || m.t === "run" || m.t === "miss" || m.t === "end" || m.t === "err" ? m.rid : undefined),
  failure: (m) => (m.t === "err" ? errorFromWire(m) : undefined),
  ends: (m) => m.t === "end",
  cancel: (rid) => ({ t: "cancel", rid }),
};

interface Item {
  d: string;
  off: number;
}

/** Transfers open at once to one peer: a counting semaphore. */
class Slots {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  give(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

/**
 * The asking side of the blob protocol: one long-lived stream per peer, on
 * which manifests and blobs are fetched and checked against their digests as
 * they stream in. What a peer sends is held to what was asked: data out of
 * order, beyond a blob's end or the credit granted, a blob that does not
 * hash to its digest, or silence while data is owed cut that peer off (its
 * stream is reset and {@link BlobClientOptions.onPeerError} told), and the
 * transfer fails naming the peer. Blobs land in the store through its partial
 * writes, so a fetch that breaks off resumes where it stopped next time.
 */
export class BlobClient {
  readonly #options: BlobClientOptions;
  readonly #channels = new Map<string, Promise<RequestChannel<BlobsMessage>>>();
  readonly #slots = new Map<string, Slots>();
  readonly #counters = new PeerByteCounters();
  readonly #codec = createBlobsCodec();
  readonly #stallMs: number;
  #closed = false;

  constructor(options: BlobClientOptions) {
    this.#options = options;
    this.#stallMs = options.stallMs ?? DEFAULT_STALL_MS;
  }

  /** Frame bytes sent to and received from `peer` under this protocol. */
  counters(peer: string): ByteCounters {
    return this.#counters.of(peer);
  }

  /** The manifest of `treeId` from `peer`, checked against the tree id. */
  async fetchTree(peer: string, treeId: string, options: { signal?: AbortSignal; grant?: Uint8Array } = {}): Promise<Uint8Array> {
    const requests = await this.#channel(peer);
    const slots = this.#slotsOf(peer);
    await slots.take();
    try {
      // The size is the server's word: what is held is what came, not what was announced (a server could announce the limit and stall).
      const parts: Uint8Array[] = [];
      let size: number | undefined;
      let filled = 0;
      const exchange = this.#watch(requests, (rid) => requests.channel.send({ t: "tree", rid, tree: treeId, ...(options.grant && { grant: options.grant }) }), options.signal, (m) => {
        if (m.t !== "data") return m.t === "end" ? undefined : `a ${m.t} message in answer to a manifest request`;
        if (m.d !== treeId) return `data of ${m.d} in answer to a request for manifest ${treeId}`;
        if (m.size > MAX_TREE_BYTES) return `a manifest of ${m.size} bytes, above the limit of ${MAX_TREE_BYTES}`;
        size ??= m.size;
        if (m.size !== size || m.off !== filled || filled + m.bytes.byteLength > m.size) return `manifest bytes ${m.off}-${m.off + m.bytes.byteLength} of ${m.size} where ${filled} of ${size} were due`;
        parts.push(m.bytes);
        filled += m.bytes.byteLength;
        return undefined;
      });
      for await (const _ of exchange) {
        // Every message was taken in on arrival.
      }
      if (size === undefined || filled !== size) throw this.#cutOff(requests, new PeerLimitError(`${peer} ended the manifest of ${treeId} after ${filled} bytes`, peer));
      const manifest = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (sha256Hex(manifest) !== treeId) throw this.#cutOff(requests, new DigestMismatchError(treeId, `the manifest sent by ${peer} does not hash to its tree id`));
      return manifest;
    } finally {
      slots.give();
    }
  }

  /**
   * Fetches from `peer` the blobs of `digests` (all of tree `treeId`) that
   * `store` lacks, resuming each blob from what the store already holds of it.
   * Resolves once every blob is stored or known to be unavailable from this peer.
   */
  async fetchBlobs(peer: string, treeId: string, digests: Iterable<string>, store: BlobSink, options: FetchBlobsOptions = {}): Promise<FetchBlobsResult> {
    const wanted = await store.missing(digests);
    const queue: Item[] = [];
    for (const d of wanted) queue.push({ d, off: await store.partialOffset(d) });
    const progress: FetchProgress = { total: wanted.length, done: 0, bytes: 0 };
    const result: FetchBlobsResult = { fetched: 0, bytes: 0, unavailable: [] };
    if (queue.length === 0) return result;
    const requests = await this.#channel(peer);
    const slots = this.#slotsOf(peer);
    const transfers = this.#options.maxTransfersPerPeer ?? DEFAULT_TRANSFERS_PER_PEER;
    const window = Math.min(MAX_WINDOW_BYTES, Math.floor((this.#options.maxBytesInFlightPerPeer ?? DEFAULT_BYTES_IN_FLIGHT_PER_PEER) / transfers));
    let failure: Error | undefined;
    /** The blob whose bytes did not verify, cutting the peer off: every transfer cut with it fails for that reason. */
    let mismatched: DigestMismatchError | undefined;
    const mismatch = (d: string): DigestMismatchError => (mismatched ??= this.#cutOff(requests, new DigestMismatchError(d, `the bytes sent by ${peer} do not hash to it`)));
    /** `bytes` more are stored, completing `blobs` more blobs. */
    const stored = (bytes: number, blobs: number): void => {
      progress.bytes += bytes;
      result.bytes += bytes;
      progress.done += blobs;
      result.fetched += blobs;
      options.onProgress?.({ ...progress });
    };
    /**
     * Whole blobs handed to the store and not yet written. The transfers read
     * on (and grant credit) meanwhile, up to the peer's bytes in flight of
     * them: waiting for each write before the next message held every
     * transfer to the store's pace, a file created per blob at worst.
     */
    const writes = new Set<Promise<void>>();
    let writingBytes = 0;
    const writeLimit = window * transfers;
    /** Hands whole `blobs` to the store, at once (a run's blobs cost one call); resolves once the writes in progress are within the limit again. */
    const storeWhole = async (blobs: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> => {
      let bytes = 0;
      for (const [, b] of blobs) bytes += b.byteLength;
      writingBytes += bytes;
      const write: Promise<void> = store.putVerifiedAll(blobs).then(
        () => stored(bytes, blobs.length),
        (err: unknown) => {
          failure ??= err instanceof DigestMismatchError ? mismatch(err.digest) : err instanceof Error ? err : new CoderClawError("UNAVAILABLE", String(err));
        },
      );
      writes.add(write);
      void write.finally(() => {
        writes.delete(write);
        writingBytes -= bytes;
      });
      while (writingBytes > writeLimit && failure === undefined) await Promise.race(writes);
      if (failure !== undefined) throw failure;
    };
    /** Resumed blobs that did not verify, asked for again from their start. */
    const retried = new Set<string>();

    const one = async (batch: Item[]): Promise<void> => {
      let cursor = 0;
      let pos = batch[0]!.off;
      let size = -1;
      let received = 0;
      /** Data the peer may send in all: the window, and the credit sent since. */
      let granted = window;
      /** Data taken in and not yet granted back as credit. */
      let taken = 0;
      let rid = 0;
      let ended = false;
      const exchange = this.#watch(
        requests,
        (r) => {
          rid = r;
          return requests.channel.send({ t: "get", rid, tree: treeId, items: batch, window, ...(options.grant && { grant: options.grant }) });
        },
        options.signal,
        (m) => {
          // An answer with nothing in it would have this side ask again for ever.
          if (m.t === "end") {
            ended = true;
            return cursor === 0 && received === 0 ? "an empty answer to a request for blobs" : undefined;
          }
          const item = batch[cursor];
          if (item === undefined) return `a ${m.t} message after every blob asked for`;
          if (m.t === "run") {
            // Each blob of a run as a `data` message of all its bytes would be.
            for (const [i, d] of m.ds.entries()) {
              const due = batch[cursor];
              if (due === undefined) return `a run past every blob asked for`;
              if (d !== due.d || due.off !== 0 || pos !== 0) return `whole blob ${d} in a run where ${due.d} from byte ${pos} was due`;
              received += m.sizes[i]!;
              if (received > granted) return `${received} bytes where ${granted} were granted`;
              cursor++;
              pos = batch[cursor]?.off ?? 0;
            }
            return undefined;
          }
          if (m.t === "miss") {
            if (m.d !== item.d || pos !== item.off) return `a miss of ${m.d} where ${item.d} was due`;
          } else if (m.t === "data") {
            if (m.d !== item.d) return `data of ${m.d} where ${item.d} was due`;
            if (m.off !== pos) return `bytes from ${m.off} of ${m.d} where ${pos} was due`;
            if (size >= 0 && m.size !== size) return `blob ${m.d} announced as ${m.size} bytes, then ${size}`;
            if (m.size > MAX_BLOB_BYTES || m.off + m.bytes.byteLength > m.size) return `bytes ${m.off}-${m.off + m.bytes.byteLength} of a ${m.size}-byte blob ${m.d}`;
            if (m.bytes.byteLength === 0 && m.size !== 0) return `an empty data message for ${m.d}`;
            received += m.bytes.byteLength;
            if (received > granted) return `${received} bytes where ${granted} were granted`;
            pos += m.bytes.byteLength;
            size = m.size;
            if (pos < size) return undefined;
          } else return `a ${m.t} message, which only an asker sends`;
          cursor++;
          pos = batch[cursor]?.off ?? 0;
          size = -1;
          return undefined;
        },
      );
      /**
       * Credit goes back in quarters of the window as data is taken in (not
       * once stored: a blob is stored whole, and a window smaller than a blob
       * must not wait for its end).
       */
      const credit = (bytes: number): void => {
        taken += bytes;
        if (taken < window / 4 || ended || requests.closed) return;
        granted += taken;
        void requests.channel.send({ t: "credit", rid, bytes: taken }).catch(() => undefined);
        taken = 0;
      };
      let at = 0;
      /**
       * The bytes of the blob arriving now, held until it is complete and then
       * stored in one write; a prefix left when the exchange ends early goes to
       * the store's partial blob, for the next fetch to continue from. A blob
       * whose first message carries all of it (most do) is kept as it came; a
       * longer one gets a buffer of its size, filled as its messages come
       * (joined at the end, the pieces were copied into fresh memory at once).
       */
      let pending: { d: string; from: number; buffer: Uint8Array; bytes: number } | undefined;
      const save = async (last: boolean): Promise<void> => {
        const held = pending!;
        pending = undefined;
        const bytes = held.bytes === held.buffer.byteLength ? held.buffer : held.buffer.subarray(0, held.bytes);
        if (last && held.from === 0) {
          // Taken from the batch now: a write that fails fails the whole fetch, and the store lacks the blob when it is asked again.
          at++;
          await storeWhole([[held.d, bytes]]);
          return;
        }
        try {
          await store.appendPartial(held.d, held.from, bytes, { last });
        } catch (err) {
          if (!(err instanceof DigestMismatchError)) throw err;
          if (held.from > 0 && !retried.has(held.d)) {
            // The prefix came from an earlier transfer, perhaps from another peer: the store dropped it, and the blob is asked for whole once more.
            retried.add(held.d);
            at++;
            queue.push({ d: held.d, off: 0 });
            return;
          }
          throw mismatch(held.d);
        }
        batch[at]!.off = held.from + bytes.byteLength;
        if (last) at++;
        stored(bytes.byteLength, last ? 1 : 0);
      };
      try {
        for await (const m of exchange) {
          if (m.t === "miss") {
            result.unavailable.push(m.d);
            at++;
          } else if (m.t === "run") {
            credit(m.bytes.byteLength);
            const blobs: Array<[string, Uint8Array]> = [];
            let from = 0;
            for (const [i, d] of m.ds.entries()) {
              const size = m.sizes[i]!;
              // A copy each: a blob may be held long after the rest of its run is gone.
              blobs.push([d, m.bytes.slice(from, from + size)]);
              from += size;
            }
            // Taken from the batch now, as a whole blob of a data message is.
            at += blobs.length;
            await storeWhole(blobs);
          } else if (m.t === "data") {
            // The size was checked on arrival: at most a blob's.
            pending ??= { d: m.d, from: m.off, buffer: m.off + m.bytes.byteLength === m.size ? m.bytes : Buffer.allocUnsafeSlow(m.size - m.off), bytes: 0 };
            if (pending.buffer !== m.bytes) pending.buffer.set(m.bytes, pending.bytes);
            pending.bytes += m.bytes.byteLength;
            credit(m.bytes.byteLength);
            if (m.off + m.bytes.byteLength === m.size) await save(true);
          }
        }
      } finally {
        // Kept only from a peer that was not cut off: bytes from one that misbehaved are not worth continuing.
        if (pending !== undefined && pending.bytes > 0 && exchange.cut === undefined && mismatched === undefined) await save(false).catch(() => undefined);
        // What the peer did not get to (it ended early, or the exchange failed) is asked for again.
        queue.unshift(...batch.slice(at));
      }
    };

    /*
     * Batches of at most BATCH_ITEMS, taken in turn by the transfers, so that
     * blobs arrive near the order asked for (a tree's, which its materialising
     * follows: with a quarter of the tree per transfer, files far ahead waited
     * for their turn, their blobs held or read back); two rounds of them at
     * least keep the transfers busy to the end.
     */
    const batchSize = Math.min(BATCH_ITEMS, MAX_ITEMS_PER_GET, Math.max(1, Math.ceil(queue.length / (2 * transfers))));
    /** Batches asked for and not finished: what they do not get comes back to the queue. */
    let asking = 0;
    const wake: Array<() => void> = [];
    const changed = (): void => {
      for (const w of wake.splice(0)) w();
    };
    const worker = async (): Promise<void> => {
      while (failure === undefined) {
        options.signal?.throwIfAborted();
        if (queue.length === 0) {
          if (asking === 0) return;
          await new Promise<void>((resolve) => wake.push(resolve));
          continue;
        }
        await slots.take();
        const batch = queue.splice(0, batchSize);
        asking++;
        try {
          if (batch.length > 0) await one(batch);
        } catch (err) {
          if (err instanceof CoderClawError && err.code === "BUSY") await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS));
          else failure ??= mismatched ?? (err instanceof Error ? err : new CoderClawError("PROTOCOL", String(err)));
        } finally {
          asking--;
          slots.give();
          changed();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: transfers }, worker));
    } finally {
      // No write lands after the fetch is over, aborted or not: its caller takes the store's word on what it holds.
      while (writes.size > 0) await Promise.all(writes);
    }
    if (failure !== undefined) throw failure;
    return result;
  }

  /** Close every stream; fetches in progress fail. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const open = [...this.#channels.values()];
    this.#channels.clear();
    await Promise.allSettled(open.map(async (p) => (await p).close()));
  }

  /**
   * Opens an exchange whose every answer is checked on arrival by `check`
   * (a complaint cuts the peer off), and which fails when the peer goes
   * silent for the stall time while the answer is not complete.
   */
  #watch(requests: RequestChannel<BlobsMessage>, send: (rid: number) => Promise<void>, signal: AbortSignal | undefined, check: (m: BlobsMessage) => string | undefined) {
    const peer = requests.peer;
    let timer: ReturnType<typeof setTimeout> | undefined;
    /** Why the peer was cut off during this exchange: what it sent after that is never read. */
    let cut: Error | undefined;
    const arm = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => (cut ??= this.#cutOff(requests, new FrameTimeoutError(`${peer} sent nothing for ${this.#stallMs} ms while a transfer was open`, peer))), this.#stallMs);
    };
    arm();
    const exchange = requests.open(send, {
      stream: true,
      ...(signal !== undefined && { signal }),
      onMessage: (m) => {
        const complaint = check(m);
        if (cut !== undefined) return;
        if (complaint !== undefined) {
          clearTimeout(timer);
          cut = this.#cutOff(requests, new PeerLimitError(`${peer} sent ${complaint}`, peer));
          return;
        }
        if (m.t === "end") clearTimeout(timer);
        else arm();
      },
    });
    return {
      /** Why the peer was cut off during this exchange, if it was. */
      get cut(): Error | undefined {
        return cut;
      },
      async *[Symbol.asyncIterator](): AsyncGenerator<BlobsMessage> {
        try {
          for await (const m of exchange) {
            if (cut !== undefined) throw cut;
            yield m;
          }
          if (cut !== undefined) throw cut;
        } finally {
          clearTimeout(timer);
          exchange.close();
        }
      },
    };
  }

  /** Reset the stream to the peer for `error`, report it, and hand the error back to be thrown. */
  #cutOff<E extends Error>(requests: RequestChannel<BlobsMessage>, error: E): E {
    if (!requests.closed) {
      requests.channel.abort(error instanceof FramingError ? error : new PeerLimitError(error.message, requests.peer));
      this.#options.onPeerError?.(requests.peer, error);
    }
    return error;
  }

  #slotsOf(peer: string): Slots {
    let slots = this.#slots.get(peer);
    if (slots === undefined) this.#slots.set(peer, (slots = new Slots(this.#options.maxTransfersPerPeer ?? DEFAULT_TRANSFERS_PER_PEER)));
    return slots;
  }

  async #channel(peer: string): Promise<RequestChannel<BlobsMessage>> {
    if (this.#closed) throw new CoderClawError("UNAVAILABLE", "blob client closed");
    const held = this.#channels.get(peer);
    if (held !== undefined) {
      const requests = await held.catch(() => undefined);
      if (requests !== undefined && !requests.closed) return requests;
      if (this.#channels.get(peer) === held) this.#channels.delete(peer);
    }
    const opening = this.#open(peerIdFromString(peer), peer);
    this.#channels.set(peer, opening);
    opening.catch(() => {
      if (this.#channels.get(peer) === opening) this.#channels.delete(peer);
    });
    return opening;
  }

  async #open(peerId: PeerId, peer: string): Promise<RequestChannel<BlobsMessage>> {
    const stream = await openStream(this.#options.libp2p, peerId, BLOBS_PROTOCOL, { timeoutMs: this.#options.openTimeoutMs ?? 10_000 });
    const channel = new FramedChannel<BlobsMessage>({
      stream,
      codec: this.#counters.counting(this.#codec, peer),
      peer,
      frameTimeoutMs: this.#stallMs,
      sendTimeoutMs: this.#stallMs,
      // Room for every transfer's window: the credit granted bounds what the peer may send.
      maxBufferedBytes: (this.#options.maxBytesInFlightPerPeer ?? DEFAULT_BYTES_IN_FLIGHT_PER_PEER) + 1024 * 1024,
    });
    const requests: RequestChannel<BlobsMessage> = new RequestChannel(channel, shape, {
      maxStreams: this.#options.maxTransfersPerPeer ?? DEFAULT_TRANSFERS_PER_PEER,
      onUnsolicited: (m) => this.#cutOff(requests, new PeerLimitError(`${peer} sent a ${m.t} message that answers no request`, peer)),
      // Bytes the framing layer could not take (a frame too large, malformed, of another version) ended the stream there: the peer sent them, as it sends a blob that does not match.
      onClose: (error) => {
        if (error !== undefined && PEER_FAULTS.has(error.reason)) this.#options.onPeerError?.(peer, error);
      },
    });
    return requests;
  }
}
