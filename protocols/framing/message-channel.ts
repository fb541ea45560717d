import type { MessageCodec } from "./codec.js";
import { AsyncQueue } from "../../src/util/async-queue.js";
import { ChannelClosedError, FramingError } from "./errors.js";

/**
 * A bidirectional channel of typed messages with one remote peer: what a
 * protocol's logic is written against. {@link FramedChannel} binds it to a
 * libp2p stream; {@link memoryChannelPair} binds two ends in one process, for
 * tests of a protocol without a network.
 */
export interface MessageChannel<T> extends AsyncIterable<T> {
  /** The remote peer, for limits and error reports. */
  readonly peer: string;
  /** True once the channel can neither send nor receive. */
  readonly closed: boolean;
  /** The error that ended the channel, if it failed. */
  readonly failure: FramingError | undefined;
  /** Queue a message; resolves once the channel took it. Sends keep their order. */
  send(message: T): Promise<void>;
  /** Flush and close gracefully. Idempotent. */
  close(): Promise<void>;
  /** End at once, failing pending reads and sends with `error`. */
  abort(error: FramingError): void;
}

/** Options of {@link memoryChannelPair}. */
export interface MemoryChannelOptions<T> {
  /** Peer names the two ends see each other as. Default `"a"` and `"b"`. */
  peers?: [string, string];
  /**
   * Each message is encoded by the sender's codec and decoded by the receiver's,
   * as over a real wire (size limit, strict schema); a refused message aborts the
   * channel as a real one would. Without it messages are structured-cloned.
   */
  codec?: MessageCodec<T>;
}

/**
 * Two connected in-memory ends of a {@link MessageChannel}. Neither side shares
 * objects with the other; messages arrive in a later microtask, in order.
 */
export function memoryChannelPair<T>(options: MemoryChannelOptions<T> = {}): [MessageChannel<T>, MessageChannel<T>] {
  const [nameA, nameB] = options.peers ?? ["a", "b"];
  const a = new MemoryEnd<T>(nameB, options.codec);
  const b = new MemoryEnd<T>(nameA, options.codec);
  a.remote = b;
  b.remote = a;
  return [a, b];
}

class MemoryEnd<T> implements MessageChannel<T> {
  remote!: MemoryEnd<T>;
  readonly #inbox = new AsyncQueue<T>();
  #ended = false;
  #failure: FramingError | undefined;

  constructor(
    readonly peer: string,
    private readonly codec: MessageCodec<T> | undefined,
  ) {}

  get closed(): boolean {
    return this.#ended;
  }

  get failure(): FramingError | undefined {
    return this.#failure;
  }

  async send(message: T): Promise<void> {
    if (this.#ended) throw this.#failure ?? new ChannelClosedError(undefined, { peer: this.peer });
    const bytes = this.codec?.encode(message);
    const copy = bytes === undefined ? structuredClone(message) : undefined;
    queueMicrotask(() => {
      if (bytes === undefined) return this.remote.#inbox.push(copy as T);
      let decoded: T;
      try {
        decoded = this.codec!.decode(bytes);
      } catch (err) {
        const failure = err instanceof FramingError ? err : new ChannelClosedError(String(err), { peer: this.remote.peer });
        return this.remote.abort(failure);
      }
      this.remote.#inbox.push(decoded);
    });
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    this.#finish();
    queueMicrotask(() => this.remote.#finish());
  }

  abort(error: FramingError): void {
    if (this.#ended) return;
    this.#finish(error);
    queueMicrotask(() => this.remote.#finish(new ChannelClosedError(`stream reset by ${this.remote.peer}`, { peer: this.remote.peer, cause: error })));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (let next = await this.#inbox.next(); next.done !== true; next = await this.#inbox.next()) yield next.value;
  }

  /** No more messages in: what came before is still read, then the end (or `error`). */
  #finish(error?: FramingError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = error;
    if (error === undefined) this.#inbox.end();
    else this.#inbox.fail(error);
  }
}
