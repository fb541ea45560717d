import type { Connection, Libp2p, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { FramedChannel, type FramedChannelOptions } from "./channel.js";
import type { MessageCodec } from "./codec.js";
import { openStream } from "./dial.js";
import { ChannelClosedError } from "./errors.js";

/** Channel settings shared by the dialing and the answering side of a protocol. */
export type ChannelSettings<T> = Omit<FramedChannelOptions<T>, "stream" | "codec" | "peer" | "onClose">;

/** Options of {@link ChannelPool}. */
export interface ChannelPoolOptions<T> {
  libp2p: Libp2p;
  protocol: string;
  codec: MessageCodec<T>;
  settings?: ChannelSettings<T>;
  /** Opening a stream (on an existing connection or a new dial) gives up after this many ms. Default 10 s. */
  openTimeoutMs?: number;
}

/**
 * At most one outbound channel per peer for one protocol, opened on first use
 * and reused until it closes: opening a stream costs ~10x a round trip on it.
 */
export class ChannelPool<T> {
  readonly #options: ChannelPoolOptions<T>;
  readonly #channels = new Map<string, Promise<FramedChannel<T>>>();
  #closed = false;

  constructor(options: ChannelPoolOptions<T>) {
    this.#options = options;
  }

  /**
   * The open channel to `peer`, opening one if there is none or the one held has
   * ended. A peer id given as a string is parsed only to open a channel: parsing
   * and printing one costs more than the rest of a lookup.
   */
  async get(peer: PeerId | string): Promise<FramedChannel<T>> {
    if (this.#closed) throw new ChannelClosedError("channel pool closed");
    const key = typeof peer === "string" ? peer : peer.toString();
    const existing = this.#channels.get(key);
    if (existing !== undefined) {
      const channel = await existing.catch(() => undefined);
      // A stream whose connection just died may not have told its channel yet.
      if (channel !== undefined && !channel.closed && channel.stream.status === "open") return channel;
      if (this.#channels.get(key) === existing) this.#channels.delete(key);
      if (this.#closed) throw new ChannelClosedError("channel pool closed");
      const racing = this.#channels.get(key);
      if (racing !== undefined) return racing;
    }
    const opening = this.#open(typeof peer === "string" ? peerIdFromString(peer) : peer, key);
    this.#channels.set(key, opening);
    opening.catch(() => {
      if (this.#channels.get(key) === opening) this.#channels.delete(key);
    });
    return opening;
  }

  /** Close every channel. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const pending = [...this.#channels.values()];
    this.#channels.clear();
    await Promise.allSettled(pending.map(async (p) => (await p).close()));
  }

  async #open(peer: PeerId, key: string): Promise<FramedChannel<T>> {
    const { libp2p, protocol, codec, settings } = this.#options;
    const stream = await openStream(libp2p, peer, protocol, { timeoutMs: this.#options.openTimeoutMs ?? 10_000 });
    // Read after the dial: get() stored this promise synchronously before the first await.
    const opened = this.#channels.get(key);
    return new FramedChannel<T>({
      ...settings,
      stream,
      codec,
      peer: key,
      onClose: () => {
        if (this.#channels.get(key) === opened) this.#channels.delete(key);
      },
    });
  }
}

/** Options of {@link handleFramed}. */
export interface HandleFramedOptions<T> {
  codec: MessageCodec<T>;
  settings?: ChannelSettings<T>;
  /** Asked before anything is read, with the connection the stream came on; a refused peer's stream is reset. */
  accept: (peer: string, connection: Connection) => boolean | Promise<boolean>;
  /** Receives each accepted inbound channel. */
  onChannel: (channel: FramedChannel<T>, connection: Connection) => void;
  /** Concurrent inbound streams of this protocol per connection. Default 4: channels are long-lived. */
  maxInboundStreams?: number;
  /** Called when an inbound channel fails (a misbehaving peer), after its stream is reset. */
  onError?: (peer: string, error: Error) => void;
}

/** Registers `protocol` on `libp2p`, turning each accepted inbound stream into a {@link FramedChannel}. */
export async function handleFramed<T>(libp2p: Libp2p, protocol: string, options: HandleFramedOptions<T>): Promise<void> {
  await libp2p.handle(
    protocol,
    async (stream, connection) => {
      const peer = connection.remotePeer.toString();
      if (!(await options.accept(peer, connection))) {
        stream.abort(new ChannelClosedError(`${protocol} refused for ${peer}`, { peer }));
        return;
      }
      const channel = new FramedChannel<T>({
        ...options.settings,
        stream,
        codec: options.codec,
        peer,
        onClose: (error) => {
          if (error !== undefined) options.onError?.(peer, error);
        },
      });
      options.onChannel(channel, connection);
    },
    { maxInboundStreams: options.maxInboundStreams ?? 4 },
  );
}
