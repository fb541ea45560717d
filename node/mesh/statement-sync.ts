import { setTimeout as sleep } from "node:timers/promises";
import type { Libp2p, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { FramedChannel } from "../../protocols/framing/channel.js";
import { openStream } from "../../protocols/framing/dial.js";
import { ChannelClosedError, FramingError, MalformedFrameError, PeerLimitError } from "../../protocols/framing/errors.js";
import { createPeerRateLimiter } from "../../protocols/framing/limits.js";
import { handleFramed } from "../../protocols/framing/pool.js";
import {
  createStatementsCodec,
  MAX_IDS_PER_MESSAGE,
  MAX_ITEMS_PER_MESSAGE,
  STATEMENTS_PROTOCOL,
  type StatementsMessage,
} from "../../protocols/statements/messages.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import type { RefusedItem, SetItem, StatementSet } from "./statement-set.js";

/** Options of {@link startStatementSync}. */
export interface StatementSyncOptions {
  libp2p: Libp2p;
  set: StatementSet;
  /** Members only: others get no stream and no item. */
  isMember: (peerId: string) => boolean;
  /** Every item a peer offered that was refused (for the audit log); nothing of it was kept. */
  onRefused?: (peer: string, refused: RefusedItem) => void;
  /** Longest pause between attempts to open a session with a connected member. Default 5 s. */
  retryMaxMs?: number;
  onError?: (peer: string, error: Error) => void;
}

/** The running replication of the signed items. */
export interface StatementSync {
  /** Peers with an open session. */
  peers(): string[];
  /** Open sessions to connected peers that have just become members; close those that are no longer. */
  membersChanged(): void;
  stop(): Promise<void>;
}

/** Ids one reconciliation may carry; far above any real set, it only stops a peer that never sends `last`. */
const MAX_PENDING_IDS = 1_000_000;
/** Bytes of items per message, well inside the codec's limit. */
const TARGET_ITEMS_BYTES = 1024 * 1024;

/**
 * Replicates the grow-only set of signed items with every connected member over
 * one long-lived stream per pair: on each session both sides say what they hold
 * (a count and a digest); where the digests differ both send their ids and then
 * the items the other lacks. Items added later, here or by a peer, are pushed at
 * once to every other session, so members that are not directly connected
 * converge. An item that fails its check is refused and reported, and a peer
 * that sends one that is not what it claims loses its session.
 */
export async function startStatementSync(options: StatementSyncOptions): Promise<StatementSync> {
  const { libp2p, set, isMember } = options;
  const codec = createStatementsCodec();
  const self = libp2p.peerId.toString();
  const sessions = new Map<string, FramedChannel<StatementsMessage>>();
  const settings = { frameTimeoutMs: 10_000, maxBufferedBytes: 8 * 1024 * 1024, limiter: createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) };
  const report = (peer: string, error: Error): void => {
    if (!(error instanceof ChannelClosedError)) options.onError?.(peer, error);
  };
  let stopped = false;

  const sendItems = async (channel: FramedChannel<StatementsMessage>, items: readonly SetItem[]): Promise<void> => {
    for (const run of runsBySize([...items], (i) => i.bytes.byteLength + 80, TARGET_ITEMS_BYTES)) {
      for (let i = 0; i < run.length; i += MAX_ITEMS_PER_MESSAGE) {
        await channel.send({ t: "items", items: run.slice(i, i + MAX_ITEMS_PER_MESSAGE).map((x) => ({ id: x.id, kind: x.kind, bytes: x.bytes })) });
      }
    }
  };

  const serve = async (channel: FramedChannel<StatementsMessage>): Promise<void> => {
    const peer = channel.peer;
    let theirs: string[] = [];
    await channel.send({ t: "have", count: set.size, digest: set.digest() });
    for await (const message of channel) {
      if (message.t === "have") {
        if (message.digest === set.digest()) continue;
        const ids = set.ids();
        for (let i = 0; i === 0 || i < ids.length; i += MAX_IDS_PER_MESSAGE) {
          await channel.send({ t: "ids", ids: ids.slice(i, i + MAX_IDS_PER_MESSAGE), last: i + MAX_IDS_PER_MESSAGE >= ids.length });
        }
      } else if (message.t === "ids") {
        theirs.push(...message.ids);
        if (theirs.length > MAX_PENDING_IDS) throw new PeerLimitError(`${peer} sent more than ${MAX_PENDING_IDS} ids`, peer);
        if (!message.last) continue;
        const known = new Set(theirs);
        theirs = [];
        const missing: SetItem[] = [];
        for (const id of set.ids()) if (!known.has(id)) missing.push(set.get(id)!);
        await sendItems(channel, missing);
      } else {
        const { refused } = await set.add(message.items, peer);
        for (const r of refused) options.onRefused?.(peer, r);
        const offence = refused.find((r) => r.offence);
        if (offence !== undefined) throw new MalformedFrameError(`statements session cut: ${offence.reason}`, { peer });
      }
    }
  };

  const startSession = (channel: FramedChannel<StatementsMessage>): void => {
    const peer = channel.peer;
    sessions.get(peer)?.abort(new ChannelClosedError("statements session replaced by a newer stream"));
    sessions.set(peer, channel);
    serve(channel)
      .catch((error: unknown) => {
        const err = error instanceof FramingError ? error : new MalformedFrameError(`statements session failed: ${String((error as Error)?.message ?? error)}`, { peer, cause: error });
        report(peer, err);
        channel.abort(err);
      })
      .finally(() => {
        if (sessions.get(peer) !== channel) return;
        sessions.delete(peer);
        void ensure(peerIdFromString(peer));
      });
  };

  const opening = new Set<string>();
  /** The peer whose id sorts first opens the one session of a pair, and keeps trying while the peer stays connected. */
  const ensure = async (peerId: PeerId): Promise<void> => {
    const peer = peerId.toString();
    if (self > peer || opening.has(peer)) return;
    opening.add(peer);
    try {
      for (let attempt = 0; ; attempt++) {
        if (stopped || sessions.has(peer) || libp2p.getConnections(peerId).length === 0 || !isMember(peer)) return;
        try {
          const stream = await openStream(libp2p, peerId, STATEMENTS_PROTOCOL, { timeoutMs: 10_000 });
          if (stopped || sessions.has(peer)) {
            stream.abort(new Error("statements session already open"));
            return;
          }
          startSession(new FramedChannel<StatementsMessage>({ ...settings, stream, codec, peer, onClose: (error) => error && report(peer, error) }));
          return;
        } catch (error) {
          if (attempt === 0) report(peer, error instanceof Error ? error : new Error(String(error)));
          await sleep(Math.min(options.retryMaxMs ?? 5000, 250 * 2 ** attempt));
        }
      }
    } finally {
      opening.delete(peer);
    }
  };

  await handleFramed<StatementsMessage>(libp2p, STATEMENTS_PROTOCOL, {
    codec,
    settings,
    maxInboundStreams: 2,
    accept: (peer) => !stopped && isMember(peer),
    onChannel: startSession,
    onError: report,
  });
  const topology = await libp2p.register(STATEMENTS_PROTOCOL, {
    onConnect: (peerId) => void ensure(peerId),
    onDisconnect: (peerId) => sessions.get(peerId.toString())?.abort(new ChannelClosedError("statements session ended: disconnect")),
  });
  // New items go to every session but the one they came from, which holds them already.
  const unsubscribe = set.onAdded((items, from) => {
    for (const [peer, channel] of sessions) if (peer !== from) void sendItems(channel, items).catch((err: Error) => report(peer, err));
  });
  const ensureAll = (): void => {
    for (const connection of libp2p.getConnections()) void ensure(connection.remotePeer);
  };
  ensureAll();

  return {
    peers: () => [...sessions.keys()],
    membersChanged: () => {
      for (const [peer, channel] of sessions) if (!isMember(peer)) channel.abort(new ChannelClosedError("statements session ended: no longer a member"));
      ensureAll();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe();
      libp2p.unregister(topology);
      await libp2p.unhandle(STATEMENTS_PROTOCOL);
      await Promise.allSettled([...sessions.values()].map((c) => c.close()));
      sessions.clear();
    },
  };
}
