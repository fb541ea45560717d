import type { Stream } from "@libp2p/interface";
import type { MessageCodec } from "./codec.js";
import { ChannelClosedError, FrameTimeoutError, FramingError, MalformedFrameError, PeerLimitError } from "./errors.js";
import { encodeFrame, FrameDecoder } from "./frame.js";
import type { MessageChannel } from "./message-channel.js";
import type { PeerRateLimiter } from "../../src/util/rate-limiter.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { TurnBatch } from "../../src/util/turn-batch.js";

/** Options of {@link FramedChannel}. */
export interface FramedChannelOptions<T> {
  stream: Stream;
  codec: MessageCodec<T>;
  /** Remote peer id, for limits and error reports. */
  peer: string;
  /** A started frame must complete within this many ms, else the peer is stalled. Default 10 s. */
  frameTimeoutMs?: number;
  /** A send waiting for the remote to drain gives up after this many ms. Default 30 s. */
  sendTimeoutMs?: number;
  /**
   * Received bytes not yet consumed above which the stream is paused, which makes
   * the muxer stop granting the sender window. Default 4 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Messages handed to readers per turn of the event loop; the rest of a burst
   * waits for the next turn. A reader that starts work on each message (a
   * server answering requests) then answers a burst in slices: the first answers
   * leave while later requests are still being handled, so both ends stay busy
   * instead of taking turns, and other peers and timers are not held up by one
   * peer's burst. Default 16.
   */
  messagesPerTurn?: number;
  /** Per-peer frame allowance, shared across this peer's channels. */
  limiter?: PeerRateLimiter;
  /** Called once when the channel ends; `error` is set when it failed. */
  onClose?: (error?: FramingError) => void;
}

/** Per-read options of {@link FramedChannel.receive}. */
export interface ReceiveOptions {
  /** Reject with {@link FrameTimeoutError} when no message arrives in time; the channel stays open. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface OutgoingFrame {
  frame: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Frames joined into one write up to this size; a larger frame goes alone rather than being copied. */
const MAX_JOINED_BYTES = 64 * 1024;

/** The frames of `batch`, in order, joined into as few writes as {@link MAX_JOINED_BYTES} allows. */
function* writesOf(batch: readonly OutgoingFrame[]): Generator<{ bytes: Uint8Array; frames: OutgoingFrame[] }> {
  for (const frames of runsBySize(batch, (f) => f.frame.byteLength, MAX_JOINED_BYTES)) {
    yield { bytes: frames.length === 1 ? frames[0]!.frame : Buffer.concat(frames.map((f) => f.frame)), frames };
  }
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/**
 * Typed messages over one long-lived libp2p stream: length-prefixed frames,
 * strict decoding and validation at the edge, backpressure both ways, a stall
 * timeout and a per-peer rate limit. Any protocol violation by the remote aborts
 * this stream only, so every other peer keeps being served.
 */
export class FramedChannel<T> implements MessageChannel<T> {
  readonly peer: string;
  readonly stream: Stream;
  readonly #codec: MessageCodec<T>;
  readonly #decoder: FrameDecoder;
  readonly #frameTimeoutMs: number;
  readonly #sendTimeoutMs: number;
  readonly #maxBufferedBytes: number;
  readonly #limiter: PeerRateLimiter | undefined;
  readonly #onClose: ((error?: FramingError) => void) | undefined;
  readonly #queue: Array<{ message: T; bytes: number }> = [];
  #queuedBytes = 0;
  readonly #waiters: Array<Waiter<T>> = [];
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  #sending: Promise<void> = Promise.resolve();
  /** Frames sent this turn; they go out at once when no earlier write is still waiting for the remote. */
  readonly #outbox = new TurnBatch<OutgoingFrame>(
    (frames) => this.#writeFrames(frames),
    () => this.#flushing === 0,
  );
  /** Frame writes that have not all gone out (waiting for the remote to drain). */
  #flushing = 0;
  readonly #perTurn: number;
  #allowance: number;
  #refillScheduled = false;
  #ended = false;
  #failure: FramingError | undefined;
  #paused = false;

  constructor(options: FramedChannelOptions<T>) {
    this.stream = options.stream;
    this.peer = options.peer;
    this.#codec = options.codec;
    this.#decoder = new FrameDecoder(options.codec.maxMessageBytes);
    this.#frameTimeoutMs = options.frameTimeoutMs ?? 10_000;
    this.#sendTimeoutMs = options.sendTimeoutMs ?? 30_000;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.#limiter = options.limiter;
    this.#perTurn = options.messagesPerTurn ?? 16;
    this.#allowance = this.#perTurn;
    this.#onClose = options.onClose;
    this.stream.addEventListener("message", (event) => {
      const data = event.data;
      if (data instanceof Uint8Array) return this.#onData(data);
      // Piece by piece: the decoder takes frames across pieces, and joining them first copied every byte once more.
      for (const piece of data) this.#onData(piece);
    });
    this.stream.addEventListener("end", () => {
      this.#finish();
      // The remote ended its side, and the channel is done: end ours, so the stream does not linger half open
      // (counted against the remote's inbound stream limit of the protocol until the connection goes).
      void this.stream.close({ signal: AbortSignal.timeout(this.#sendTimeoutMs) }).catch(() => undefined);
    });
    this.stream.addEventListener("close", (event) => {
      if (event.error !== undefined && !event.local) this.#finish(new ChannelClosedError(`stream reset by ${this.peer}`, { peer: this.peer, cause: event.error }));
      else this.#finish();
    });
    // A stream can end before it is handed over (the remote refused it as soon as it was negotiated);
    // its close and end events are gone by then.
    if (this.stream.status === "reset" || this.stream.status === "aborted") {
      this.#finish(new ChannelClosedError(`stream ${this.stream.status} before the channel was set up`, { peer: this.peer }));
    } else if ((this.stream.readStatus === "closed" || this.stream.remoteWriteStatus === "closed") && this.stream.readBufferLength === 0) {
      this.#finish();
    }
  }

  /** True once the channel can neither send nor receive. */
  get closed(): boolean {
    return this.#ended;
  }

  /** The error that ended the channel, if it failed. */
  get failure(): FramingError | undefined {
    return this.#failure;
  }

  /**
   * Queue a message. Resolves once the stream accepted it; waits for the remote to
   * drain when the stream signals backpressure. Sends keep their order.
   *
   * The first message of a turn of the event loop leaves at once; the others
   * sent in the same turn follow together in one stream write at its end. Every
   * write is a muxer frame, an encryption and a socket write, whatever its
   * size, so under load many small messages cost little more than one, while a
   * lone request waits for nothing.
   */
  send(message: T): Promise<void> {
    if (this.#ended) return Promise.reject(this.#failure ?? new ChannelClosedError(undefined, { peer: this.peer }));
    let frame: Uint8Array;
    try {
      frame = encodeFrame(this.#codec.encode(message), this.#codec.maxMessageBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => this.#outbox.push({ frame, resolve, reject }));
  }

  #writeFrames(frames: OutgoingFrame[]): void {
    const writes = [...writesOf(frames)];
    this.#flushing++;
    const sent = this.#sending.then(async () => {
      for (const [i, { bytes, frames }] of writes.entries()) {
        try {
          await this.#write(bytes);
        } catch (err) {
          for (const { frames: unsent } of writes.slice(i)) for (const f of unsent) f.reject(err);
          throw err;
        }
        for (const f of frames) f.resolve();
      }
    });
    this.#sending = sent.catch(() => undefined).finally(() => this.#flushing--);
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (this.#ended) throw this.#failure ?? new ChannelClosedError(undefined, { peer: this.peer });
    if (this.stream.writableNeedsDrain) {
      try {
        await this.stream.onDrain({ signal: AbortSignal.timeout(this.#sendTimeoutMs) });
      } catch {
        const failure = this.#ended
          ? (this.#failure ?? new ChannelClosedError(undefined, { peer: this.peer }))
          : new FrameTimeoutError(`${this.peer} did not read for ${this.#sendTimeoutMs} ms`, this.peer);
        if (!this.#ended) this.abort(failure);
        throw failure;
      }
    }
    try {
      this.stream.send(bytes);
    } catch (err) {
      // The stream ended under us without an event reaching this channel yet: it is over either way.
      const failure = new ChannelClosedError(`stream to ${this.peer} closed: ${(err as Error).message}`, { peer: this.peer, cause: err });
      this.abort(failure);
      throw failure;
    }
  }

  /** The next message; rejects with {@link ChannelClosedError} once the remote ended cleanly. */
  receive(options?: ReceiveOptions): Promise<T> {
    if (this.#queue.length > 0 && this.#spend()) {
      const next = this.#queue.shift()!;
      this.#consumed(next.bytes);
      return Promise.resolve(next.message);
    }
    if (this.#ended && this.#queue.length === 0) return Promise.reject(this.#failure ?? new ChannelClosedError(undefined, { peer: this.peer }));
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => settle(() => reject(options?.signal?.reason));
      const settle = (fn: () => void): void => {
        if (timer !== undefined) clearTimeout(timer);
        options?.signal?.removeEventListener("abort", onAbort);
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        fn();
      };
      const waiter: Waiter<T> = {
        resolve: (value) => settle(() => resolve(value)),
        reject: (err) => settle(() => reject(err)),
      };
      if (options?.timeoutMs !== undefined) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => waiter.reject(new FrameTimeoutError(`no message from ${this.peer} within ${ms} ms`, this.peer)), ms);
      }
      if (options?.signal !== undefined) {
        if (options.signal.aborted) return onAbort();
        options.signal.addEventListener("abort", onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (true) {
      try {
        yield await this.receive();
      } catch (err) {
        if (err instanceof ChannelClosedError && this.#failure === undefined) return;
        throw err;
      }
    }
  }

  /** Flush queued sends and close gracefully; aborts if the remote does not let us finish in time. Idempotent. */
  async close(): Promise<void> {
    if (this.#ended) return;
    const signal = AbortSignal.timeout(this.#sendTimeoutMs);
    this.#outbox.take();
    try {
      await this.#sending;
      await this.stream.close({ signal });
    } catch (err) {
      this.stream.abort(err instanceof Error ? err : new Error(String(err)));
    }
    this.#finish();
  }

  /** Drop the stream at once, failing pending reads and sends with `error`. */
  abort(error: FramingError): void {
    if (this.#ended) return;
    this.#finish(error);
    this.stream.abort(error);
  }

  #onData(chunk: Uint8Array): void {
    if (this.#ended) return;
    let frames: Uint8Array[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      return this.#violation(err);
    }
    for (const frame of frames) {
      if (this.#limiter !== undefined && !this.#limiter.take(this.peer)) {
        return this.abort(new PeerLimitError(`${this.peer} exceeded its frame rate`, this.peer));
      }
      let message: T;
      try {
        message = this.#codec.decode(frame);
      } catch (err) {
        return this.#violation(err);
      }
      if (this.#waiters.length > 0 && this.#spend()) {
        this.#waiters.shift()!.resolve(message);
        continue;
      }
      this.#queue.push({ message, bytes: frame.byteLength });
      this.#queuedBytes += frame.byteLength;
    }
    if (!this.#paused && this.#queuedBytes > this.#maxBufferedBytes) {
      this.#paused = true;
      this.stream.pause();
    }
    this.#armStallTimer();
  }

  /**
   * Takes one delivery from this turn's allowance, false when it is spent. The
   * allowance comes back on the next turn of the event loop, when messages held
   * meanwhile go to the readers waiting for them.
   */
  #spend(): boolean {
    this.#scheduleRefill();
    if (this.#allowance === 0) return false;
    this.#allowance--;
    return true;
  }

  #scheduleRefill(): void {
    if (this.#refillScheduled) return;
    this.#refillScheduled = true;
    setImmediate(() => this.#refill());
  }

  #refill(): void {
    this.#refillScheduled = false;
    this.#allowance = this.#perTurn;
    while (this.#waiters.length > 0 && this.#queue.length > 0 && this.#spend()) {
      const next = this.#queue.shift()!;
      // Taken before the stream resumes: resuming can deliver buffered data at once, which must not reach this reader first.
      const waiter = this.#waiters.shift()!;
      this.#consumed(next.bytes);
      waiter.resolve(next.message);
    }
    // Readers that waited behind held messages of a channel that has since ended cleanly.
    if (this.#ended && this.#queue.length === 0) {
      const reason = this.#failure ?? new ChannelClosedError(undefined, { peer: this.peer });
      for (const waiter of this.#waiters.splice(0)) waiter.reject(reason);
    }
  }

  #armStallTimer(): void {
    if (!this.#decoder.partial) {
      if (this.#stallTimer !== undefined) clearTimeout(this.#stallTimer);
      this.#stallTimer = undefined;
      return;
    }
    if (this.#stallTimer !== undefined) return;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined;
      this.abort(new FrameTimeoutError(`${this.peer} stalled mid-frame for ${this.#frameTimeoutMs} ms`, this.peer));
    }, this.#frameTimeoutMs);
  }

  #consumed(bytes: number): void {
    this.#queuedBytes -= bytes;
    if (this.#paused && this.#queuedBytes <= this.#maxBufferedBytes / 2) {
      this.#paused = false;
      this.stream.resume();
    }
  }

  #violation(err: unknown): void {
    const failure = err instanceof FramingError ? err : new MalformedFrameError(String(err), { cause: err });
    this.abort(failure.peer === undefined ? withPeer(failure, this.peer) : failure);
  }

  #finish(error?: FramingError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = error;
    if (this.#stallTimer !== undefined) clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    if (error !== undefined) {
      this.#queue.length = 0;
      this.#queuedBytes = 0;
    }
    // Readers waiting behind held messages get them first (see #refill); the others learn of the end now.
    const reason = error ?? new ChannelClosedError(undefined, { peer: this.peer });
    for (const waiter of this.#waiters.splice(this.#queue.length)) waiter.reject(reason);
    if (this.#waiters.length > 0) this.#scheduleRefill();
    this.#onClose?.(error);
  }
}

function withPeer(error: FramingError, peer: string): FramingError {
  (error as { peer?: string }).peer = peer;
  return error;
}
