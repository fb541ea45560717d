import type { Libp2p } from "@libp2p/interface";
import { AUDIT_PROTOCOL, createAuditCodec, type AuditMessage } from "../../protocols/audit/messages.js";
import { auditRequestShape, pullAuditLog, serveAuditLog, type ReplicatedLog } from "../../protocols/audit/replication.js";
import { createPeerRateLimiter, handleFramed, RequestPool } from "../../protocols/framing/index.js";
import type { AuditLog } from "../../src/security/index.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";

/** Options of {@link startAuditReplicator}. */
export interface AuditReplicatorOptions {
  libp2p: Libp2p;
  /** The log to serve from and ingest into. */
  audit: ReplicatedLog;
  isMember: (peerId: string) => boolean;
  /** Members connected now. */
  members: () => string[];
  /** Pull round interval, ms. Default 5,000. */
  intervalMs?: number;
  onError?: (peer: string, error: Error) => void;
}

/** The running replicator. */
export interface AuditReplicator {
  /** Run one pull round with every connected member now (tests, and after reconnects). */
  syncNow(): Promise<void>;
  stop(): Promise<void>;
}

/** Deadline of each answer (heads, or one page of entries), ms. */
const ANSWER_TIMEOUT_MS = 10_000;

/**
 * Replicates audit logs among members over libp2p (the logic is
 * {@link serveAuditLog} and {@link pullAuditLog}): it serves this node's log to
 * members, and each round pulls from every connected member, at most one pull
 * per member at a time, on one long-lived stream each.
 */
export async function startAuditReplicator(options: AuditReplicatorOptions): Promise<AuditReplicator> {
  const codec = createAuditCodec();
  await handleFramed<AuditMessage>(options.libp2p, AUDIT_PROTOCOL, {
    codec,
    settings: { limiter: createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) },
    maxInboundStreams: 2,
    accept: options.isMember,
    onChannel: (channel) => void serveAuditLog(channel, options.audit).catch((err: Error) => options.onError?.(channel.peer, err)),
    ...(options.onError && { onError: options.onError }),
  });

  const pool = new RequestPool<AuditMessage>({
    libp2p: options.libp2p,
    protocol: AUDIT_PROTOCOL,
    codec,
    openTimeoutMs: 5000,
    shape: auditRequestShape,
    requests: { timeoutMs: ANSWER_TIMEOUT_MS },
  });
  const busy = new Set<string>();
  const pullFrom = async (peer: string): Promise<void> => {
    if (busy.has(peer)) return;
    busy.add(peer);
    try {
      await pullAuditLog(await pool.get(peer), options.audit);
    } catch (err) {
      options.onError?.(peer, err as Error);
    } finally {
      busy.delete(peer);
    }
  };
  const round = async (): Promise<void> => {
    await Promise.all(options.members().map(pullFrom));
  };
  const timer = setInterval(() => void round(), options.intervalMs ?? 5000);
  timer.unref();
  return {
    syncNow: round,
    stop: async () => {
      clearInterval(timer);
      await options.libp2p.unhandle(AUDIT_PROTOCOL);
      await pool.close();
    },
  };
}

/** Options of {@link auditReplicationService}. */
export interface AuditReplicationServiceOptions {
  /** This node's audit log: served to members, and where their logs are ingested. */
  audit: AuditLog;
  /** Pull round interval, ms. Default 5,000. */
  intervalMs?: number;
}

/**
 * Audit replication as a node service: members are the node's, and a failed
 * pull or serve is reported against its peer.
 */
export function auditReplicationService(options: AuditReplicationServiceOptions): DefinedService<AuditReplicator> {
  return defineService(AUDIT_PROTOCOL, (context) =>
    startAuditReplicator({
      libp2p: context.libp2p,
      audit: options.audit,
      isMember: context.isMember,
      members: context.connectedMembers,
      ...(options.intervalMs !== undefined && { intervalMs: options.intervalMs }),
      onError: (peer, error) => context.report(error, peer),
    }),
  );
}
