import type { MessageCodec } from "./codec.js";
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

type Slot<T> = { value: T } | { error: FramingError } | { end: true };

class MemoryEnd<T> implements MessageChannel<T> {
  remote!: MemoryEnd<T>;
  readonly #inbox: Array<Slot<T>> = [];
  #waiter: ((slot: Slot<T>) => void) | undefined;
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
      if (bytes === undefined) return this.remote.#deliver({ value: copy as T });
      let decoded: T;
      try {
        decoded = this.codec!.decode(bytes);
      } catch (err) {
        const failure = err instanceof FramingError ? err : new ChannelClosedError(String(err), { peer: this.remote.peer });
        return this.remote.abort(failure);
      }
      this.remote.#deliver({ value: decoded });
    });
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    this.#finish();
    queueMicrotask(() => this.remote.#deliver({ end: true }));
  }

  abort(error: FramingError): void {
    if (this.#ended) return;
    this.#finish(error);
    queueMicrotask(() => this.remote.#deliver({ error: new ChannelClosedError(`stream reset by ${this.remote.peer}`, { peer: this.remote.peer, cause: error }) }));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const slot = this.#inbox.shift() ?? (this.#ended ? { end: true as const } : await new Promise<Slot<T>>((resolve) => (this.#waiter = resolve)));
      if ("value" in slot) yield slot.value;
      else if ("error" in slot) throw slot.error;
      else if (this.#failure !== undefined) throw this.#failure;
      else return;
    }
  }

  #deliver(slot: Slot<T>): void {
    if (this.#ended && "value" in slot) return;
    if (!("value" in slot)) this.#finish("error" in slot ? slot.error : undefined);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter !== undefined) waiter(slot);
    else this.#inbox.push(slot);
  }

  #finish(error?: FramingError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(error === undefined ? { end: true } : { error });
  }
}
