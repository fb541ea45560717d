import { CoderClawError } from "../../src/contract/errors.js";
import { errorToWire } from "../../src/transport/error-wire.js";
import type { BlobSource } from "../../src/workspace/blob-source.js";
import { MalformedFrameError } from "../framing/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import { ByteWindow } from "./byte-window.js";
import { BLOB_CHUNK_BYTES, MAX_RUN_BLOBS, type BlobsMessage } from "./messages.js";

type Get = Extract<BlobsMessage, { t: "get" }>;

/** Default transfers (`get` or `tree` requests) one peer may have open at once. */
export const DEFAULT_TRANSFERS_PER_PEER = 4;
/** Default bytes sent to one peer and not yet taken by its stream. */
export const DEFAULT_BYTES_IN_FLIGHT_PER_PEER = 8 * 1024 * 1024;
/** Default time a peer may go without progress (no message, no reading, no credit) while a transfer is open, ms. */
export const DEFAULT_STALL_MS = 10_000;

/** Options of {@link createBlobServer}. */
export interface BlobServerOptions {
  /** Whether `peer` may read tree `treeId` (its manifest and its blobs), presenting `grant` with its request when it did. */
  authorize(peer: string, treeId: string, grant?: Uint8Array): boolean | Promise<boolean>;
  /** The digests tree `treeId` names, or undefined when it is not known here. */
  treeBlobs(treeId: string): ReadonlySet<string> | undefined | Promise<ReadonlySet<string> | undefined>;
  /** The manifest bytes of `treeId` (its index, which lists its pieces), when held. */
  tree(treeId: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** Sources blobs are read from, in order; more can be added with {@link BlobServer.addSource}. */
  sources?: readonly BlobSource[];
  /** Default {@link DEFAULT_TRANSFERS_PER_PEER}; more are refused with BUSY. */
  maxTransfersPerPeer?: number;
  /** Default {@link DEFAULT_BYTES_IN_FLIGHT_PER_PEER}. */
  maxBytesInFlightPerPeer?: number;
  /** A transfer whose asker grants no credit for this long ends early (the asker may ask again), ms. Default {@link DEFAULT_STALL_MS}. */
  creditWaitMs?: number;
  onError?: (peer: string, error: Error) => void;
}

/** The serving side of the blob protocol. */
export interface BlobServer {
  /** Serve one peer's channel until it ends. */
  serve(channel: MessageChannel<BlobsMessage>): Promise<void>;
  /** Read blobs from `source` too (a live snapshot), until the returned function is called. */
  addSource(source: BlobSource): () => void;
}

/** Data a transfer may still send: its window, plus what the asker granted since. */
class Credit {
  #bytes: number;
  #wake: (() => void) | undefined;

  constructor(bytes: number) {
    this.#bytes = bytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  grant(bytes: number): void {
    this.#bytes += bytes;
    this.#wake?.();
  }

  spend(bytes: number): void {
    this.#bytes -= bytes;
  }

  /** True once there is credit; false when none came within `ms`, or the transfer ended (credit left or not: a cancelled transfer reads nothing more). */
  async wait(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    if (this.#bytes > 0) return true;
    return new Promise<boolean>((resolve) => {
      const finish = (granted: boolean): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        signal.removeEventListener("abort", onAbort);
        resolve(granted);
      };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), ms);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#wake = () => finish(true);
    });
  }
}

/** Whole blobs gathered for one `run` message. */
class RunBuilder {
  #ds: string[] = [];
  #blobs: Uint8Array[] = [];
  #bytes = 0;

  get count(): number {
    return this.#ds.length;
  }

  /** Whether a blob of `size` bytes still goes in. */
  fits(size: number): boolean {
    return this.#ds.length < MAX_RUN_BLOBS && this.#bytes + size <= BLOB_CHUNK_BYTES;
  }

  add(d: string, bytes: Uint8Array): void {
    this.#ds.push(d);
    this.#blobs.push(bytes);
    this.#bytes += bytes.byteLength;
  }

  /** The `run` message of what was added, which starts a new run. */
  take(rid: number): Extract<BlobsMessage, { t: "run" }> {
    const message = { t: "run" as const, rid, ds: this.#ds, sizes: this.#blobs.map((b) => b.byteLength), bytes: Buffer.concat(this.#blobs, this.#bytes) };
    this.#ds = [];
    this.#blobs = [];
    this.#bytes = 0;
    return message;
  }
}

/** One open transfer of a channel. */
interface Transfer {
  controller: AbortController;
  credit: Credit;
}

interface PeerState {
  transfers: number;
  window: ByteWindow;
  channels: number;
}

/**
 * Serves manifests and blobs to peers authorised for the tree they name. A
 * blob is sent only when it belongs to that tree, and a refusal reads the same
 * whether or not this node holds the blob. Each blob is checked against its
 * digest before it leaves: a source whose file changed since it was
 * snapshotted is skipped rather than sent as corrupt bytes.
 */
export function createBlobServer(options: BlobServerOptions): BlobServer {
  const sources: BlobSource[] = [...(options.sources ?? [])];
  const maxTransfers = options.maxTransfersPerPeer ?? DEFAULT_TRANSFERS_PER_PEER;
  const maxInFlight = options.maxBytesInFlightPerPeer ?? DEFAULT_BYTES_IN_FLIGHT_PER_PEER;
  const creditWaitMs = options.creditWaitMs ?? DEFAULT_STALL_MS;
  const peers = new Map<string, PeerState>();

  const readVerified = async (digest: string): Promise<Uint8Array | undefined> => {
    for (const source of sources) {
      if (!(await source.has(digest))) continue;
      const bytes = await source.read(digest);
      if (bytes !== undefined) return bytes;
    }
    return undefined;
  };

  const serve = async (channel: MessageChannel<BlobsMessage>): Promise<void> => {
    const peer = channel.peer;
    let state = peers.get(peer);
    if (state === undefined) peers.set(peer, (state = { transfers: 0, window: new ByteWindow(maxInFlight), channels: 0 }));
    const own = state;
    own.channels++;
    const open = new Map<number, Transfer>();

    const send = (message: BlobsMessage): Promise<void> => channel.send(message);
    /** Data goes out without waiting for the stream to take it, so chunks flow back to back within the window. */
    const sendData = async (message: Extract<BlobsMessage, { t: "data" | "run" }>, signal: AbortSignal): Promise<void> => {
      const bytes = message.bytes.byteLength;
      await own.window.take(bytes);
      if (signal.aborted || channel.closed) {
        own.window.give(bytes);
        throw new CoderClawError("CANCELLED", "transfer ended");
      }
      channel.send(message).then(
        () => own.window.give(bytes),
        () => own.window.give(bytes),
      );
    };

    const refuseUnlessAllowed = async (treeId: string, grant: Uint8Array | undefined): Promise<void> => {
      if (!(await options.authorize(peer, treeId, grant))) throw new CoderClawError("PERMISSION_DENIED", `${peer} may not read tree ${treeId}`);
    };

    const sendTree = async (rid: number, treeId: string, grant: Uint8Array | undefined, signal: AbortSignal): Promise<void> => {
      await refuseUnlessAllowed(treeId, grant);
      const bytes = await options.tree(treeId);
      if (bytes === undefined) throw new CoderClawError("NOT_FOUND", `tree ${treeId} is not held here`);
      for (let off = 0; off < bytes.byteLength || off === 0; off += BLOB_CHUNK_BYTES) {
        await sendData({ t: "data", rid, d: treeId, off, size: bytes.byteLength, bytes: bytes.subarray(off, off + BLOB_CHUNK_BYTES) }, signal);
        if (bytes.byteLength === 0) break;
      }
    };

    /**
     * Sends blobs within the transfer's credit; returns early (the asker asks
     * again for the rest) when credit stops coming. Whole blobs that fit go
     * several to a `run`, up to a chunk's bytes: small files are most of a
     * tree, and a message each cost more than their bytes on both sides.
     */
    const sendBlobs = async (get: Get, { controller: { signal }, credit }: Transfer): Promise<void> => {
      await refuseUnlessAllowed(get.tree, get.grant);
      const members = await options.treeBlobs(get.tree);
      for (const { d } of get.items) {
        // The same answer whether or not the blob is held here, so a refusal reveals nothing.
        if (members === undefined || !members.has(d)) throw new CoderClawError("PERMISSION_DENIED", `${peer} may not read blob ${d} through tree ${get.tree}`);
      }
      const run = new RunBuilder();
      const sendRun = async (): Promise<void> => {
        if (run.count > 0) await sendData(run.take(get.rid), signal);
      };
      for (const { d, off: from } of get.items) {
        // The asker grants credit for what it has taken in: a run held while waiting for credit would wait for ever.
        if (credit.bytes <= 0) await sendRun();
        if (!(await credit.wait(creditWaitMs, signal))) return;
        const bytes = await readVerified(d);
        if (bytes === undefined) {
          await sendRun();
          await send({ t: "miss", rid: get.rid, d });
          continue;
        }
        if (from > bytes.byteLength) throw new CoderClawError("INVALID_INPUT", `offset ${from} is beyond the end of blob ${d} (${bytes.byteLength} bytes)`);
        if (from === 0 && bytes.byteLength <= credit.bytes && bytes.byteLength <= BLOB_CHUNK_BYTES) {
          if (!run.fits(bytes.byteLength)) await sendRun();
          credit.spend(bytes.byteLength);
          run.add(d, bytes);
          continue;
        }
        // What is left does not fit the credit, or starts at an offset (an empty blob always goes in a run).
        await sendRun();
        for (let off = from; off < bytes.byteLength; ) {
          if (!(await credit.wait(creditWaitMs, signal))) return;
          const n = Math.min(BLOB_CHUNK_BYTES, bytes.byteLength - off, credit.bytes);
          credit.spend(n);
          await sendData({ t: "data", rid: get.rid, d, off, size: bytes.byteLength, bytes: bytes.subarray(off, off + n) }, signal);
          off += n;
        }
      }
      await sendRun();
    };

    const start = (rid: number, window: number, run: (transfer: Transfer) => Promise<void>): void => {
      if (open.has(rid)) {
        channel.abort(new MalformedFrameError(`${peer} reused request id ${rid} while it was open`, { peer }));
        return;
      }
      if (own.transfers >= maxTransfers) {
        void send({ t: "err", rid, code: "BUSY", message: `${peer} already has ${maxTransfers} transfers open` }).catch(() => undefined);
        return;
      }
      // Counted until its run settles, cancelled or not: a peer that cancels each request at once must not have more running than its allowance.
      own.transfers++;
      const transfer: Transfer = { controller: new AbortController(), credit: new Credit(window) };
      const { signal } = transfer.controller;
      open.set(rid, transfer);
      const done = (): void => {
        if (open.get(rid) === transfer) open.delete(rid);
        own.transfers--;
      };
      run(transfer).then(
        async () => {
          done();
          if (!signal.aborted) await send({ t: "end", rid });
        },
        async (err: unknown) => {
          done();
          if (!signal.aborted && !channel.closed) await send({ t: "err", rid, ...errorToWire(err) });
        },
      ).catch(() => undefined);
    };

    try {
      for await (const message of channel) {
        switch (message.t) {
          case "tree":
            // A manifest is held whole by the asker anyway: it goes without credit, within the peer's window.
            start(message.rid, Infinity, (transfer) => sendTree(message.rid, message.tree, message.grant, transfer.controller.signal));
            break;
          case "get":
            start(message.rid, message.window, (transfer) => sendBlobs(message, transfer));
            break;
          case "credit":
            // Credit for a transfer that has just ended is late, not wrong.
            open.get(message.rid)?.credit.grant(message.bytes);
            break;
          case "cancel": {
            const transfer = open.get(message.rid);
            if (transfer === undefined) break;
            open.delete(message.rid);
            transfer.controller.abort();
            break;
          }
          default:
            channel.abort(new MalformedFrameError(`${peer} sent a ${message.t} message, which only a server sends`, { peer }));
        }
      }
    } catch (err) {
      options.onError?.(peer, err as Error);
    } finally {
      // Each run gives its place back as it settles, which the abort hastens.
      for (const transfer of open.values()) transfer.controller.abort();
      open.clear();
      if (--own.channels === 0 && peers.get(peer) === own) peers.delete(peer);
    }
  };

  return {
    serve,
    addSource(source) {
      sources.push(source);
      return () => {
        const i = sources.indexOf(source);
        if (i >= 0) sources.splice(i, 1);
      };
    },
  };
}
