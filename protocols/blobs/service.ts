import type { Libp2p } from "@libp2p/interface";
import { FramedChannel } from "../framing/channel.js";
import { ChannelClosedError } from "../framing/errors.js";
import { BLOBS_PROTOCOL, createBlobsCodec, type BlobsMessage } from "./messages.js";
import { createBlobServer, DEFAULT_STALL_MS, type BlobServer, type BlobServerOptions } from "./server.js";
import { PeerByteCounters, type ByteCounters } from "./wire-counters.js";

/** Options of {@link startBlobService}. */
export interface BlobServiceOptions extends BlobServerOptions {
  libp2p: Libp2p;
  /** Members only; others' streams are reset unread. */
  isMember: (peer: string) => boolean | Promise<boolean>;
  /** A peer that stops reading, or stops mid-frame, this long is cut off, ms. Default 10 s. */
  stallMs?: number;
}

/** The blob protocol, served on libp2p. */
export interface BlobService {
  readonly server: BlobServer;
  /** Frame bytes sent to and received from `peer` by this service. */
  counters(peer: string): ByteCounters;
  /** Membership changed: the streams of peers that are no longer members are reset. */
  membersChanged(): Promise<void>;
  stop(): Promise<void>;
}

/** Registers the blob protocol on `libp2p` (see {@link createBlobServer} for what it serves and to whom). */
export async function startBlobService(options: BlobServiceOptions): Promise<BlobService> {
  const server = createBlobServer(options);
  const counters = new PeerByteCounters();
  const codec = createBlobsCodec();
  const stallMs = options.stallMs ?? DEFAULT_STALL_MS;
  const channels = new Set<FramedChannel<BlobsMessage>>();
  await options.libp2p.handle(
    BLOBS_PROTOCOL,
    async (stream, connection) => {
      const peer = connection.remotePeer.toString();
      if (!(await options.isMember(peer))) {
        stream.abort(new ChannelClosedError(`${BLOBS_PROTOCOL} refused for ${peer}`, { peer }));
        return;
      }
      const channel = new FramedChannel<BlobsMessage>({
        stream,
        codec: counters.counting(codec, peer),
        peer,
        frameTimeoutMs: stallMs,
        sendTimeoutMs: stallMs,
        // A failure is reported by the server, whose reading of the channel ends with it.
        onClose: () => channels.delete(channel),
      });
      channels.add(channel);
      void server.serve(channel);
    },
    { maxInboundStreams: 4 },
  );
  return {
    server,
    counters: (peer) => counters.of(peer),
    membersChanged: async () => {
      for (const channel of [...channels]) {
        if (!(await options.isMember(channel.peer))) channel.abort(new ChannelClosedError(`${channel.peer} is no longer a member`, { peer: channel.peer }));
      }
    },
    stop: async () => {
      await options.libp2p.unhandle(BLOBS_PROTOCOL);
      await Promise.allSettled([...channels].map((c) => c.close()));
    },
  };
}
