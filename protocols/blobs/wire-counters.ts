import type { MessageCodec } from "../framing/codec.js";
import { varintLength } from "../framing/frame.js";

/** Frame bytes exchanged with one peer under the blob protocol, length prefixes included. */
export interface ByteCounters {
  sent: number;
  received: number;
}

/** Byte counters by peer, kept for as long as the node runs (tests and benchmarks read them). */
export class PeerByteCounters {
  readonly #peers = new Map<string, ByteCounters>();

  /** The counters of `peer` (zero when nothing was exchanged). */
  of(peer: string): ByteCounters {
    const held = this.#peers.get(peer);
    return held === undefined ? { sent: 0, received: 0 } : { ...held };
  }

  /** `codec`, counting every frame it encodes or decodes against `peer`. */
  counting<T>(codec: MessageCodec<T>, peer: string): MessageCodec<T> {
    let counters = this.#peers.get(peer);
    if (counters === undefined) this.#peers.set(peer, (counters = { sent: 0, received: 0 }));
    const held = counters;
    return {
      version: codec.version,
      maxMessageBytes: codec.maxMessageBytes,
      encode(message) {
        const bytes = codec.encode(message);
        held.sent += varintLength(bytes.byteLength) + bytes.byteLength;
        return bytes;
      },
      decode(bytes) {
        held.received += varintLength(bytes.byteLength) + bytes.byteLength;
        return codec.decode(bytes);
      },
    };
  }
}
