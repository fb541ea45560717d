import type { Libp2p, PeerId } from "@libp2p/interface";
import { AUDIT_PROTOCOL, createAuditCodec, type AuditMessage } from "../../protocols/audit/messages.js";
import { AuditRefusedError, auditRequestShape, pullChains, serveAuditLog, type ChainHeads, type ReplicatedLog } from "../../protocols/audit/replication.js";
import { createPeerRateLimiter, handleFramed, RequestPool, type RequestChannel } from "../../protocols/framing/index.js";
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
  /**
   * A full round (every connected member's heads compared) this often, ms, as
   * a safety net; default none: members reconcile on (re)connect and push what
   * grows.
   */
  intervalMs?: number;
  /** Growth is collected this long before members are told of it, ms. Default 200. */
  tipDelayMs?: number;
  onError?: (peer: string, error: Error) => void;
}

/** The running replicator. */
export interface AuditReplicator {
  /** Run one full round with every connected member now (tests, and after reconnects). */
  syncNow(): Promise<void>;
  /** Reconcile with members that have become members while connected. */
  membersChanged(): void;
  stop(): Promise<void>;
}

/** Deadline of each answer (heads, or one page of entries), ms. */
const ANSWER_TIMEOUT_MS = 10_000;
/** A failed pull is tried again, as a full comparison, after this long, doubling up to {@link RETRY_MAX_MS}, while the member stays connected. */
const RETRY_MS = 2_000;
const RETRY_MAX_MS = 60_000;

/**
 * Replicates audit logs among members over libp2p (the logic is
 * {@link serveAuditLog} and {@link pullChains}): it
 * serves this node's log to members; on every (re)connect with a member it
 * compares all chain heads once; afterwards, when chains grow here (own
 * appends, or entries ingested from others), it tells connected members which
 * (`tip`), and a member pulls what it lacks from whoever told it. Nothing is
 * sent while nothing changes. At most one pull per member at a time, on one
 * long-lived stream each.
 */
export async function startAuditReplicator(options: AuditReplicatorOptions): Promise<AuditReplicator> {
  const { libp2p, audit } = options;
  const codec = createAuditCodec();
  /** Per member: the newest seq of each chain it is known to hold (it said so in a tip). */
  const known = new Map<string, Map<string, number>>();
  const learn = (peer: string, heads: ChainHeads): void => {
    const held = known.get(peer) ?? new Map<string, number>();
    for (const { author, seq } of heads) if (seq > (held.get(author) ?? 0)) held.set(author, seq);
    known.set(peer, held);
  };

  const pool = new RequestPool<AuditMessage>({
    libp2p,
    protocol: AUDIT_PROTOCOL,
    codec,
    openTimeoutMs: 5000,
    shape: auditRequestShape,
    requests: { timeoutMs: ANSWER_TIMEOUT_MS },
  });
  /** Per member, the pulls asked of it, run one after another: a tip that comes during a pull is pulled after it. */
  const chains = new Map<string, Promise<void>>();
  /**
   * Per author, the pull of its chain under way, how far it goes, and its end. A joiner compares
   * heads with every member at once, and every member that took a chain's growth tells the others
   * of it at about the same moment: a chain a pull under way brings is pulled from nobody else
   * until that pull ended, and then only what is still missing.
   */
  const pulling = new Map<string, { seq: number; done: Promise<void> }>();
  const pullShared = async (requests: RequestChannel<AuditMessage>, heads: ChainHeads): Promise<void> => {
    const mine = await audit.heads();
    const ahead = heads.filter(({ author, seq }) => seq > (mine.get(author)?.seq ?? 0));
    const covered = ahead.filter(({ author, seq }) => (pulling.get(author)?.seq ?? 0) >= seq);
    const fresh = ahead.filter((h) => !covered.includes(h)).map((h) => {
      let end!: () => void;
      const claim = { seq: h.seq, done: new Promise<void>((resolve) => (end = resolve)) };
      pulling.set(h.author, claim);
      return { heads: h, claim, end };
    });
    const release = ({ heads: h, claim, end }: (typeof fresh)[number]): void => {
      end();
      if (pulling.get(h.author) === claim) pulling.delete(h.author);
    };
    // Chains claimed here are pulled before waiting for any other pull, so two pulls never wait for each other;
    // a pull that fails releases every claim it still holds, so those waiting for it ask their own member.
    try {
      for (const claimed of fresh) {
        await pullChains(requests, audit, [claimed.heads]);
        release(claimed);
      }
    } finally {
      for (const claimed of fresh) release(claimed);
    }
    if (covered.length === 0) return;
    await Promise.all(covered.map(({ author }) => pulling.get(author)?.done));
    await pullChains(requests, audit, covered);
  };
  let stopped = false;
  const pull = async (peer: string, heads: ChainHeads | "all", attempt: number): Promise<void> => {
    if (stopped) return;
    try {
      const requests = await pool.get(peer);
      // What arrived meanwhile makes a tipped chain's pull ask nothing.
      await pullShared(requests, heads === "all" ? await headsOf(requests) : heads);
    } catch (err) {
      options.onError?.(peer, err as Error);
      // Nothing else would bring what this pull was for until the member reconnects or its chains grow again.
      const again = (): void => {
        if (!stopped && options.members().includes(peer)) void pullFrom(peer, "all", attempt + 1);
      };
      setTimeout(again, Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** attempt)).unref();
    }
  };
  /** A member's chain heads; none when it refuses to say. */
  const headsOf = async (requests: RequestChannel<AuditMessage>): Promise<ChainHeads> => {
    try {
      const answer = await requests.request((rid) => ({ t: "heads", rid }));
      return answer.t === "heads-ans" ? answer.heads : [];
    } catch (err) {
      if (err instanceof AuditRefusedError) return [];
      throw err;
    }
  };
  const pullFrom = (peer: string, heads: ChainHeads | "all", attempt = 0): Promise<void> => {
    const next = (chains.get(peer) ?? Promise.resolve()).then(() => pull(peer, heads, attempt));
    chains.set(peer, next);
    void next.then(() => {
      if (chains.get(peer) === next) chains.delete(peer);
    });
    return next;
  };

  await handleFramed<AuditMessage>(libp2p, AUDIT_PROTOCOL, {
    codec,
    settings: { limiter: createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) },
    maxInboundStreams: 2,
    accept: options.isMember,
    onChannel: (channel) =>
      void serveAuditLog(channel, audit, (heads) => {
        learn(channel.peer, heads);
        void (async () => {
          const mine = await audit.heads();
          const ahead = heads.filter(({ author, seq }) => seq > (mine.get(author)?.seq ?? 0));
          if (ahead.length > 0) await pullFrom(channel.peer, ahead);
        })().catch((err: Error) => options.onError?.(channel.peer, err));
      }).catch((err: Error) => options.onError?.(channel.peer, err)),
    ...(options.onError && { onError: options.onError }),
  });

  // Growth is told from the heads as they were last told: a burst of appends is one tip.
  let told = await audit.heads();
  let tipTimer: ReturnType<typeof setTimeout> | undefined;
  const tip = async (): Promise<void> => {
    tipTimer = undefined;
    const now = await audit.heads();
    const grown: Array<{ author: string; seq: number }> = [];
    for (const [author, { seq }] of now) if (seq > (told.get(author)?.seq ?? 0)) grown.push({ author, seq });
    told = now;
    if (grown.length === 0) return;
    await Promise.all(
      options.members().map(async (peer) => {
        // A member that told this node it holds a chain this far needs no word of it.
        const held = known.get(peer);
        const news = grown.filter(({ author, seq }) => (held?.get(author) ?? 0) < seq);
        if (news.length === 0) return;
        try {
          await (await pool.get(peer)).request((rid) => ({ t: "tip", rid, heads: news }));
        } catch (err) {
          options.onError?.(peer, err as Error);
        }
      }),
    );
  };
  const unsubscribe = audit.onGrow?.(() => {
    if (!stopped) tipTimer ??= setTimeout(() => void tip().catch((err: Error) => options.onError?.(libp2p.peerId.toString(), err)), options.tipDelayMs ?? 200);
  });

  // Reconciliation on every (re)connect; what a member held before it went away is no longer known to be current.
  const reconciled = new Set<string>();
  const reconcile = (): void => {
    for (const peer of options.members()) {
      if (reconciled.has(peer)) continue;
      reconciled.add(peer);
      void pullFrom(peer, "all");
    }
  };
  const onConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString();
    reconciled.delete(peer);
    // The member list follows the connection a moment later.
    setTimeout(reconcile, 50).unref();
  };
  const onDisconnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString();
    reconciled.delete(peer);
    known.delete(peer);
  };
  libp2p.addEventListener("peer:connect", onConnect);
  libp2p.addEventListener("peer:disconnect", onDisconnect);
  reconcile();

  const round = async (): Promise<void> => {
    await Promise.all(options.members().map((peer) => pullFrom(peer, "all")));
  };
  const timer = options.intervalMs === undefined ? undefined : setInterval(() => void round(), options.intervalMs);
  timer?.unref();
  return {
    syncNow: round,
    membersChanged: reconcile,
    stop: async () => {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
      if (tipTimer !== undefined) clearTimeout(tipTimer);
      unsubscribe?.();
      libp2p.removeEventListener("peer:connect", onConnect);
      libp2p.removeEventListener("peer:disconnect", onDisconnect);
      await libp2p.unhandle(AUDIT_PROTOCOL);
      await pool.close();
    },
  };
}

/** Options of {@link auditReplicationService}. */
export interface AuditReplicationServiceOptions {
  /** This node's audit log: served to members, and where their logs are ingested. */
  audit: AuditLog;
  /** A full round with every connected member this often, ms, as a safety net; default none. */
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
