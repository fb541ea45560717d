import type { Libp2p } from "@libp2p/interface";
import { ChannelClosedError } from "../../protocols/framing/errors.js";
import { createPeerRateLimiter } from "../../src/util/rate-limiter.js";
import { startPairSessions, type PairSession } from "../../protocols/framing/pair-sessions.js";
import { createStatementsCodec, runStatementsSession, sendItems, STATEMENTS_PROTOCOL, type StatementsMessage } from "../../protocols/statements/index.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";
import type { RefusedItem, StatementSet } from "./statement-set.js";

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

  const pairs = await startPairSessions<StatementsMessage, PairSession<StatementsMessage>>({
    libp2p,
    protocol: STATEMENTS_PROTOCOL,
    codec: createStatementsCodec(),
    settings: { frameTimeoutMs: 10_000, maxBufferedBytes: 8 * 1024 * 1024, limiter: createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) },
    isMember,
    open: (channel) => ({ channel, run: () => runStatementsSession(channel, set, (r) => options.onRefused?.(channel.peer, r)) }),
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
