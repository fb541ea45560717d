import type { Libp2p } from "@libp2p/interface";
import type { AuditLog } from "../../src/security/index.js";
import { ChannelPool, createPeerRateLimiter, handleFramed, type FramedChannel } from "../../protocols/framing/index.js";
import { AUDIT_PAGE, AUDIT_PROTOCOL, createAuditCodec, type AuditMessage } from "../../protocols/audit/messages.js";

/** Options of {@link startAuditReplicator}. */
export interface AuditReplicatorOptions {
  libp2p: Libp2p;
  /** The log to serve from and ingest into. */
  audit: AuditLog;
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

/**
 * Replicates audit logs among members: each round asks every connected member for
 * its chain heads and pulls, page by page, the entries of any chain it is behind
 * on, whoever authored them. Ingestion authenticates every entry by its author's
 * key (a run of entries through the hash chain to its newest entry's signature),
 * so a member relaying entries cannot forge or edit them; conflicting authentic
 * entries are kept as fork evidence.
 */
export async function startAuditReplicator(options: AuditReplicatorOptions): Promise<AuditReplicator> {
  const codec = createAuditCodec();
  const serve = async (channel: FramedChannel<AuditMessage>): Promise<void> => {
    try {
      for await (const m of channel) {
        if (m.t === "heads") {
          const heads = await options.audit.heads();
          await channel.send({ t: "heads-ans", rid: m.rid, heads: [...heads].map(([author, h]) => ({ author, seq: h.seq })) });
        } else if (m.t === "pull") {
          const entries = await options.audit.exportEntries(m.author, m.after, AUDIT_PAGE);
          await channel.send({ t: "entries", rid: m.rid, entries });
        } else {
          await channel.send({ t: "err", rid: "rid" in m ? m.rid : 1, message: `unexpected ${m.t}` });
        }
      }
    } catch (err) {
      options.onError?.(channel.peer, err as Error);
    }
  };

  await handleFramed(options.libp2p, AUDIT_PROTOCOL, {
    codec,
    settings: { limiter: createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) },
    maxInboundStreams: 2,
    accept: options.isMember,
    onChannel: (channel) => void serve(channel),
    ...(options.onError && { onError: options.onError }),
  });

  const pool = new ChannelPool<AuditMessage>({ libp2p: options.libp2p, protocol: AUDIT_PROTOCOL, codec, openTimeoutMs: 5000 });
  let nextRid = 1;
  const ask = async (channel: FramedChannel<AuditMessage>, m: AuditMessage): Promise<AuditMessage> => {
    await channel.send(m);
    // One request at a time per channel: the answer is the next message.
    return channel.receive({ timeoutMs: 10_000 });
  };
  const busy = new Set<string>();
  const pullFrom = async (peer: string): Promise<void> => {
    if (busy.has(peer)) return;
    busy.add(peer);
    try {
      const channel = await pool.get(peer);
      const answer = await ask(channel, { t: "heads", rid: nextRid++ });
      if (answer.t !== "heads-ans") return;
      const mine = await options.audit.heads();
      for (const { author, seq } of answer.heads) {
        let have = mine.get(author)?.seq ?? 0;
        while (have < seq) {
          const page = await ask(channel, { t: "pull", rid: nextRid++, author, after: have });
          if (page.t !== "entries" || page.entries.length === 0) break;
          const report = await options.audit.ingest(page.entries);
          // A gap or refusal means our copy cannot extend further from this peer now; stop, retry next round.
          if (report.appended === 0) break;
          have += report.appended;
        }
      }
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
