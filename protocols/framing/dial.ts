import { setTimeout as sleep } from "node:timers/promises";
import type { Libp2p, PeerId, Stream } from "@libp2p/interface";
import { preferredConnection } from "./connection-choice.js";

/** Options of {@link openStream}. */
export interface OpenStreamOptions {
  /** Whole budget, retries included. */
  timeoutMs: number;
  /** Further attempts after the first fails. Default 3. */
  retries?: number;
}

/** What libp2p throws when a connection listed as open has no working muxer. */
const DEAD_CONNECTION = new Set(["ConnectionClosedError", "MuxerClosedError"]);

/**
 * Opens a `protocol` stream to `peer`, trying again when the attempt fails.
 *
 * A connection can say it is open while it can carry no stream: one the remote
 * just closed, until its close is processed, and one whose muxer gave up (yamux
 * resets a connection that receives too many streams before it is set up, but
 * libp2p keeps the TCP connection listed as open). libp2p would pick the same
 * connection for every later stream, so such a connection is aborted before the
 * next attempt, which then dials afresh. Where two connections to `peer` are
 * open, the stream goes on the one both ends keep ({@link preferredConnection}).
 */
export async function openStream(libp2p: Libp2p, peer: PeerId, protocol: string, options: OpenStreamOptions): Promise<Stream> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      const connection = preferredConnection(libp2p, peer) ?? (await libp2p.dial(peer, { signal }));
      try {
        return await connection.newStream(protocol, { signal });
      } catch (error) {
        if (DEAD_CONNECTION.has((error as Error).name) && connection.status === "open") connection.abort(error as Error);
        throw error;
      }
    } catch (error) {
      if (signal.aborted || attempt >= retries) throw error;
      await sleep(50 * 2 ** attempt);
    }
  }
}
