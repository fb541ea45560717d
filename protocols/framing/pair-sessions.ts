import { setTimeout as sleep } from "node:timers/promises";
import type { Libp2p, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { FramedChannel } from "./channel.js";
import type { MessageCodec } from "./codec.js";
import { openStream } from "./dial.js";
import { ChannelClosedError, FramingError, MalformedFrameError } from "./errors.js";
import type { MessageChannel } from "./message-channel.js";
import { handleFramed, type ChannelSettings } from "./pool.js";

/** A protocol session with one peer over one channel, run until the channel ends. */
export interface PairSession<T> {
  readonly channel: MessageChannel<T>;
  run(): Promise<void>;
}

/** Options of {@link startPairSessions}. */
export interface PairSessionsOptions<T, S extends PairSession<T>> {
  libp2p: Libp2p;
  protocol: string;
  codec: MessageCodec<T>;
  settings: ChannelSettings<T>;
  /** Members only: others' streams are refused and no stream is opened to them. */
  isMember: (peerId: string) => boolean | Promise<boolean>;
  /** Make the session for a new channel; `initiator` is true on the side that opened the stream. */
  open: (channel: FramedChannel<T>, initiator: boolean) => S;
  /** Longest pause between attempts to open a session with a connected member. Default 5 s. */
  retryMaxMs?: number;
  /** Failures other than a channel closing (the normal end of a session). */
  onError?: (peer: string, error: Error) => void;
}

/** The sessions of one protocol with every connected member. */
export interface PairSessions<S> {
  /** The open session with each peer. */
  readonly sessions: ReadonlyMap<string, S>;
  /** Close the session with `peer` (it is opened again while the peer stays a connected member). */
  disconnect(peer: string, reason: string): void;
  /** Close sessions with peers that are no longer members, and open them with those that have become members. */
  membersChanged(): Promise<void>;
  /** Stop: close every session and release the protocol. Idempotent. */
  stop(): Promise<void>;
}

/**
 * One long-lived session of a protocol with each connected member: the peer
 * whose id sorts first opens the stream, so each pair shares one; it keeps
 * trying while the peer stays connected (one failed attempt must not leave the
 * pair without the protocol until they reconnect), and opens it again when a
 * session ends while the peer is still connected (a stream reset, the old
 * connection of a redial). A newer stream from the same peer replaces the old
 * session.
 */
export async function startPairSessions<T, S extends PairSession<T>>(options: PairSessionsOptions<T, S>): Promise<PairSessions<S>> {
  const { libp2p, protocol, codec, settings, isMember } = options;
  const self = libp2p.peerId.toString();
  const sessions = new Map<string, S>();
  const opening = new Set<string>();
  let stopped = false;
  const report = (peer: string, error: unknown): void => {
    const err = error instanceof Error ? error : new Error(String(error));
    if (!(err instanceof ChannelClosedError)) options.onError?.(peer, err);
  };
  const closed = (reason: string): ChannelClosedError => new ChannelClosedError(`${protocol} session ended: ${reason}`);

  const start = (channel: FramedChannel<T>, initiator: boolean): void => {
    const peer = channel.peer;
    sessions.get(peer)?.channel.abort(closed("replaced by a newer stream"));
    const session = options.open(channel, initiator);
    sessions.set(peer, session);
    session
      .run()
      .catch((error: unknown) => {
        report(peer, error);
        channel.abort(error instanceof FramingError ? error : new MalformedFrameError(`${protocol} session failed: ${(error as Error)?.message ?? String(error)}`, { peer, cause: error }));
      })
      .finally(() => {
        if (sessions.get(peer) !== session) return;
        sessions.delete(peer);
        void ensure(peerIdFromString(peer));
      });
  };

  const ensure = async (peerId: PeerId): Promise<void> => {
    const peer = peerId.toString();
    if (self > peer || opening.has(peer)) return;
    opening.add(peer);
    try {
      for (let attempt = 0; ; attempt++) {
        if (stopped || sessions.has(peer) || libp2p.getConnections(peerId).length === 0 || !(await isMember(peer))) return;
        try {
          const stream = await openStream(libp2p, peerId, protocol, { timeoutMs: 10_000 });
          if (stopped || sessions.has(peer)) {
            stream.abort(new Error(`${protocol} session already open`));
            return;
          }
          start(new FramedChannel<T>({ ...settings, stream, codec, peer, onClose: (error) => error && report(peer, error) }), true);
          return;
        } catch (error) {
          if (attempt === 0) report(peer, error);
          await sleep(Math.min(options.retryMaxMs ?? 5000, 250 * 2 ** attempt));
        }
      }
    } finally {
      opening.delete(peer);
    }
  };

  await handleFramed<T>(libp2p, protocol, {
    codec,
    settings,
    maxInboundStreams: 2,
    accept: async (peer) => !stopped && (await isMember(peer)),
    onChannel: (channel) => start(channel, false),
    onError: report,
  });
  const topology = await libp2p.register(protocol, {
    onConnect: (peerId) => void ensure(peerId),
    onDisconnect: (peerId) => sessions.get(peerId.toString())?.channel.abort(closed("disconnect")),
  });
  // The topology hears of a peer only once identify tells its protocols; on a loaded machine identify can time out,
  // and the pair would stay connected without the protocol. The opener tries as soon as a connection is up.
  const onPeerConnect = (event: CustomEvent<PeerId>): void => void ensure(event.detail);
  libp2p.addEventListener("peer:connect", onPeerConnect);
  const ensureAll = (): void => {
    for (const connection of libp2p.getConnections()) void ensure(connection.remotePeer);
  };
  // Peers connected before the protocol started get no onConnect.
  ensureAll();

  return {
    sessions,
    disconnect: (peer, reason) => sessions.get(peer)?.channel.abort(closed(reason)),
    async membersChanged() {
      for (const [peer, session] of sessions) if (!(await isMember(peer))) session.channel.abort(closed("no longer a member"));
      ensureAll();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      libp2p.removeEventListener("peer:connect", onPeerConnect);
      libp2p.unregister(topology);
      await libp2p.unhandle(protocol);
      await Promise.allSettled([...sessions.values()].map((s) => s.channel.close()));
      sessions.clear();
    },
  };
}
