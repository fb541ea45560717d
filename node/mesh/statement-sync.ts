import type { Libp2p } from "@libp2p/interface";
import type { FramedChannel } from "../../protocols/framing/channel.js";
import { ChannelClosedError, MalformedFrameError, PeerLimitError } from "../../protocols/framing/errors.js";
import { createPeerRateLimiter } from "../../protocols/framing/limits.js";
import { startPairSessions, type PairSession } from "../../protocols/framing/pair-sessions.js";
import {
  createStatementsCodec,
  MAX_IDS_PER_MESSAGE,
  MAX_ITEMS_PER_MESSAGE,
  STATEMENTS_PROTOCOL,
  type StatementsMessage,
} from "../../protocols/statements/messages.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";
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
  const report = (peer: string, error: Error): void => {
    if (!(error instanceof ChannelClosedError)) options.onError?.(peer, error);
  };

  const sendItems = async (channel: FramedChannel<StatementsMessage>, items: readonly SetItem[]): Promise<void> => {
    for (const run of runsBySize([...items], (i) => i.bytes.byteLength + 80, TARGET_ITEMS_BYTES)) {
      for (let i = 0; i < run.length; i += MAX_ITEMS_PER_MESSAGE) {
        await channel.send({ t: "items", items: run.slice(i, i + MAX_ITEMS_PER_MESSAGE).map((x) => ({ id: x.id, kind: x.kind, bytes: x.bytes })) });
      }
    }
  };

  /** Both sides say what they hold; where that differs both send their ids, then what the other lacks. */
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

  const pairs = await startPairSessions<StatementsMessage, PairSession<StatementsMessage>>({
    libp2p,
    protocol: STATEMENTS_PROTOCOL,
    codec: createStatementsCodec(),
    settings: { frameTimeoutMs: 10_000, maxBufferedBytes: 8 * 1024 * 1024, limiter: createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) },
    isMember,
    open: (channel) => ({ channel, run: () => serve(channel) }),
    ...(options.retryMaxMs !== undefined && { retryMaxMs: options.retryMaxMs }),
    onError: report,
  });
  // New items go to every session but the one they came from, which holds them already.
  const unsubscribe = set.onAdded((items, from) => {
    for (const [peer, session] of pairs.sessions) if (peer !== from) void sendItems(session.channel, items).catch((err: Error) => report(peer, err));
  });

  return {
    peers: () => [...pairs.sessions.keys()],
    membersChanged: () => void pairs.membersChanged(),
    async stop() {
      unsubscribe();
      await pairs.stop();
    },
  };
}

/**
 * The replication of `set` as a node service: refused items are audited, the
 * rest of {@link startStatementSync}'s options come from the node.
 */
export function statementSyncService(set: StatementSet): DefinedService<StatementSync> {
  return defineService(STATEMENTS_PROTOCOL, (context) =>
    startStatementSync({
      libp2p: context.libp2p,
      set,
      isMember: context.isMember,
      onRefused: (peer, r) => context.audit({ action: "statements.refused", peer, resource: `${r.kind} ${r.id}`, result: "denied", reason: r.reason }),
      onError: (peer, error) => context.report(error, peer),
    }),
  );
}
