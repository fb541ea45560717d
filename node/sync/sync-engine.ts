import type { Libp2p } from "@libp2p/interface";
import { ChannelClosedError } from "../../protocols/framing/errors.js";
import { createPeerRateLimiter, type PeerRateLimiter } from "../../src/util/rate-limiter.js";
import { refusalAuditSampler } from "../../src/security/audit/refusal-sampler.js";
import { startPairSessions } from "../../protocols/framing/pair-sessions.js";
import { createSyncCodec, SYNC_PROTOCOL, type SyncMessage } from "../../protocols/sync/messages.js";
import type { DocumentChange } from "../../src/storage/document-store.js";
import type { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { createLivePush, type LivePush } from "../../protocols/sync/live-push.js";
import { holdsHeads, PeerSession, type RefusedChange } from "../../protocols/sync/peer-session.js";
import { createWantTracker } from "../../protocols/sync/want-tracker.js";
import type { LogPositions } from "../../protocols/sync/log-positions.js";
import type { ReplicaAuthority } from "../../protocols/sync/replica-authority.js";
import type { Quarantine } from "./quarantine.js";
import type { EchoTexts } from "../../protocols/sync/echo-texts.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";

/**
 * Namespaces replicated between members by default: task documents and
 * workflow documents (each with one writer, see task-replicas.ts). Audit logs
 * have their own protocol (entries signed one by one), and signed statements
 * theirs (a grow-only set).
 */
export const REPLICATED_PREFIXES = ["task/", "workflow/"] as const;

/** The document store operations sync uses. */
export type SyncStore = Pick<LevelDocumentStore, "get" | "update" | "receiveNew" | "heads" | "summary" | "bucketEntries" | "onChange" | "changedSince" | "logPosition">;

/** Options of {@link createSyncEngine}. */
export interface SyncEngineOptions {
  libp2p: Libp2p;
  store: SyncStore;
  /** Who may write each document, and the signatures that prove it. */
  authority: ReplicaAuthority;
  /** Whether a peer is a mesh member; non-members get no sync stream and no data. */
  isMember: (peerId: string) => boolean | Promise<boolean>;
  /** Default {@link REPLICATED_PREFIXES}. */
  prefixes?: readonly string[];
  /** Local changes are collected this long before one batched push. Default 15 ms. */
  debounceMs?: number;
  /** Default 1 MiB. */
  targetFrameBytes?: number;
  /** Default 5,000. */
  maxEntriesPerFrame?: number;
  /** Per-peer frame allowance; pass the node's shared limiter. Default: 1,000 frames/s, bursts of 2,000. */
  limiter?: PeerRateLimiter;
  /** A started frame must complete within this many ms. Default 10 s. */
  frameTimeoutMs?: number;
  /** Longest pause between attempts to open a session with a connected member. Default 5 s. */
  retryMaxMs?: number;
  /** Reports sync failures and misbehaving peers; the engine keeps going. */
  onError?: (peer: string, error: Error) => void;
  /** Every received change that was refused (for the audit log and the quarantine); nothing of it was stored. */
  onRefused?: (refused: RefusedChange) => void;
  /** Offences (see {@link RefusedChange.offence}) after which a peer is reported to {@link onOffender}. Default 3. */
  maxOffences?: number;
  /** A peer that kept sending forged or malformed changes: the node disconnects it. */
  onOffender?: (peer: string) => void;
  /**
   * Where this node stands in each member's change log, so a reconnect asks
   * only for what changed since. Without it every session compares summaries.
   */
  positions?: LogPositions;
  /** Texts exchanged with each peer outside sync (a routed task's output), left out of patches going back to it. */
  echoes?: EchoTexts;
}

/** Replicates documents under the configured prefixes with every connected member. */
export interface SyncEngine {
  /** Peers with an open sync session. */
  peers(): string[];
  /** Drop the session with `peer` (e.g. after its membership was revoked). */
  disconnect(peer: string): void;
  /** Open sessions to connected peers that have just become members. */
  membersChanged(): void;
  /** Stop syncing and release the protocol. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts document sync: one long-lived stream per member peer, opened by the
 * peer whose id sorts first so each pair shares a single stream; on every
 * (re)connect, each side asks for what changed since the position of the
 * other's change log it last reconciled to (a summary exchange when it has
 * none); live, debounced, batched pushes afterwards.
 * Changes received from one peer are announced to the others and sent to
 * those that ask, so members that are not directly connected still converge;
 * each session is told which peers this node syncs with directly.
 */
export async function createSyncEngine(options: SyncEngineOptions): Promise<SyncEngine> {
  const { libp2p, store, isMember, authority } = options;
  const prefixes = options.prefixes ?? REPLICATED_PREFIXES;
  const codec = createSyncCodec();
  const settings = {
    frameTimeoutMs: options.frameTimeoutMs ?? 10_000,
    maxBufferedBytes: 32 * 1024 * 1024,
    // Sync batches many documents per frame, so an honest peer sends few frames; a flood is cut off.
    limiter: options.limiter ?? createPeerRateLimiter({ framesPerSecond: 1000, burst: 2000 }),
  };
  // A closed channel is the normal end of a session (hang-up, restart); only report real failures.
  const report = (peer: string, error: Error): void => {
    if (!(error instanceof ChannelClosedError)) options.onError?.(peer, error);
  };
  let stopped = false;
  const offences = new Map<string, number>();
  const onRefused = (refused: RefusedChange): void => {
    options.onRefused?.(refused);
    if (!refused.offence) return;
    const count = (offences.get(refused.peer) ?? 0) + 1;
    offences.set(refused.peer, count);
    if (count === (options.maxOffences ?? 3)) options.onOffender?.(refused.peer);
  };

  // Made once the sessions exist; a session's first messages may come before.
  let push: LivePush | undefined;
  const wants = createWantTracker({
    holds: (id, heads) => holdsHeads(store, id, heads),
    onError: (error, peer) => {
      if (!stopped) report(peer, error);
    },
  });
  let neighboursTimer: ReturnType<typeof setTimeout> | undefined;
  // Sessions open and close in bursts (a node joining, a partition): the peer lists go out once it settles.
  const neighboursChanged = (): void => {
    // Sessions end while the engine stops, after its timer was cleared: none is set then.
    if (stopped) return;
    neighboursTimer ??= setTimeout(() => {
      neighboursTimer = undefined;
      if (stopped) return;
      const peers = [...pairs.sessions.keys()];
      for (const session of pairs.sessions.values()) void session.sendPeers(peers);
    }, 20);
  };

  const pairs = await startPairSessions<SyncMessage, PeerSession>({
    libp2p,
    protocol: SYNC_PROTOCOL,
    codec,
    settings,
    isMember,
    open: (channel, initiator) => {
      neighboursChanged();
      return new PeerSession(channel, {
        store,
        authority,
        prefixes,
        targetFrameBytes: options.targetFrameBytes ?? 1024 * 1024,
        maxEntriesPerFrame: options.maxEntriesPerFrame ?? 5000,
        initiator,
        onRefused,
        onError: (error) => report(channel.peer, error),
        wants,
        onPeers: (removed) => push?.peersLost(channel.peer, removed),
        onEnded: neighboursChanged,
        ...(options.positions !== undefined && { positions: options.positions }),
        ...(options.echoes !== undefined && { echoes: options.echoes }),
      });
    },
    ...(options.retryMaxMs !== undefined && { retryMaxMs: options.retryMaxMs }),
    onError: report,
  });

  const live = createLivePush({ sessions: pairs.sessions, authority, ...(options.debounceMs !== undefined && { debounceMs: options.debounceMs }) });
  push = live;
  const unsubscribe = store.onChange((change: DocumentChange) => {
    if (!stopped && prefixes.some((p) => change.id.startsWith(p))) live.changed(change);
  });

  return {
    peers: () => [...pairs.sessions.keys()],
    disconnect: (peer) => pairs.disconnect(peer, "membership revoked"),
    membersChanged: () => void pairs.membersChanged(),
    async stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe();
      live.stop();
      wants.stop();
      if (neighboursTimer !== undefined) clearTimeout(neighboursTimer);
      await pairs.stop();
    },
  };
}

/** How long a member that kept sending forged replicated changes stays disconnected. */
export const OFFENDER_BLOCK_MS = 10 * 60_000;

/** What {@link syncService} needs beyond the node's context. */
export type SyncServiceOptions = Pick<SyncEngineOptions, "store" | "authority" | "prefixes" | "positions" | "echoes"> & {
  /** Keeps refused changes as evidence. */
  quarantine: Quarantine;
};

/**
 * Document sync as a node service: a refused change is quarantined and audited,
 * and a member that keeps sending forged changes is cut off for
 * {@link OFFENDER_BLOCK_MS}, whatever its trust.
 */
export function syncService(options: SyncServiceOptions): DefinedService<SyncEngine> {
  return defineService(SYNC_PROTOCOL, (context) => {
    // A member can have thousands of documents refused at once (one batch signature over changes by non-members).
    const audited = refusalAuditSampler({ maxKeys: 1024, what: "refusals of this peer's changes" });
    return createSyncEngine({
      ...options,
      libp2p: context.libp2p,
      isMember: context.isMember,
      onRefused: (r) => {
        options.quarantine.keep({ at: Date.now(), id: r.id, reason: r.reason, peer: r.peer, writer: r.writer, bytes: r.changes }).catch((error: Error) => context.report(error, r.peer));
        const reason = audited(r.peer, r.reason);
        if (reason !== undefined) context.audit({ action: "sync.refused", peer: r.peer, resource: r.id, result: "denied", reason });
      },
      onOffender: (peer) => context.block(peer, OFFENDER_BLOCK_MS),
      onError: (peer, error) => context.report(error, peer),
    });
  });
}
