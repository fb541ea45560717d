import type { PeerId } from "@libp2p/interface";
import type { FramedChannel } from "./channel.js";
import { ChannelPool, type ChannelPoolOptions } from "./pool.js";
import { RequestChannel, type RequestChannelOptions, type RequestShape } from "./request-channel.js";

/** Options of {@link RequestPool}. */
export interface RequestPoolOptions<T> extends ChannelPoolOptions<T> {
  shape: RequestShape<T>;
  /** Options of each peer's {@link RequestChannel}. */
  requests?: RequestChannelOptions<T>;
}

/**
 * One {@link RequestChannel} per peer for one protocol, over the pooled
 * long-lived channel to that peer: what the asking side of a request protocol
 * holds.
 */
export class RequestPool<T> {
  readonly #channels: ChannelPool<T>;
  readonly #options: RequestPoolOptions<T>;
  readonly #requests = new WeakMap<FramedChannel<T>, RequestChannel<T>>();

  constructor(options: RequestPoolOptions<T>) {
    this.#options = options;
    this.#channels = new ChannelPool(options);
  }

  /** The request channel to `peer`, opening a stream if none is open. Rejects when the peer cannot be reached. */
  async get(peer: PeerId | string): Promise<RequestChannel<T>> {
    const channel = await this.#channels.get(peer);
    let requests = this.#requests.get(channel);
    if (requests === undefined) {
      requests = new RequestChannel(channel, this.#options.shape, this.#options.requests);
      this.#requests.set(channel, requests);
    }
    return requests;
  }

  /** Close every channel; their open exchanges fail. Idempotent. */
  close(): Promise<void> {
    return this.#channels.close();
  }
}
