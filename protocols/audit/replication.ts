import { CoderClawError } from "../../src/contract/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import { serveRequests, type RequestChannel, type RequestShape } from "../framing/request-channel.js";
import { AUDIT_PAGE, type AuditMessage } from "./messages.js";

/**
 * What replication needs of an audit log (the shape of `AuditLog`): its chain
 * heads, a page of one author's entries, and ingestion that authenticates what
 * it is given entry by entry.
 */
export interface ReplicatedLog {
  /** Last seq of every chain held, by author. */
  heads(): Promise<ReadonlyMap<string, { seq: number }>>;
  /** At most `limit` encoded entries of `author`'s chain after seq `afterSeq`, in order. */
  exportEntries(author: string, afterSeq: number, limit: number): Promise<Uint8Array[]>;
  /** Verifies and stores what extends a held chain; `appended` counts what did. */
  ingest(entries: Uint8Array[]): Promise<{ appended: number }>;
  /** Call `listener` whenever a chain grew; returns its removal. Without it nothing is pushed to members. */
  onGrow?(listener: () => void): () => void;
}

/** The remote answered an audit request with `err`; the message is the remote's. */
export class AuditRefusedError extends CoderClawError {
  constructor(message: string) {
    super("PROTOCOL", message);
  }
}

/** How audit answers name their request: `rid`, on every answer and refusal. */
export const auditRequestShape: RequestShape<AuditMessage> = {
  answerTo: (m) => (m.t === "heads-ans" || m.t === "tip-ans" || m.t === "entries" || m.t === "err" ? m.rid : undefined),
  failure: (m) => (m.t === "err" ? new AuditRefusedError(m.message) : undefined),
};

/** Chain heads as they travel: the newest seq of each author's chain. */
export type ChainHeads = ReadonlyArray<{ author: string; seq: number }>;

/**
 * The answering side: chain heads, and pages of at most {@link AUDIT_PAGE}
 * entries of one chain; a `tip` (chains that grew at the remote) is
 * acknowledged and handed to `onTip`. Anything else is answered with `err`.
 * Resolves when the remote ends the channel; rejects with what broke it (the
 * log failing included).
 */
export function serveAuditLog(channel: MessageChannel<AuditMessage>, log: ReplicatedLog, onTip?: (heads: ChainHeads) => void): Promise<void> {
  return serveRequests(channel, {
    answer: async (m): Promise<AuditMessage> => {
      if (m.t === "tip" && onTip !== undefined) {
        onTip(m.heads);
        return { t: "tip-ans", rid: m.rid };
      }
      if (m.t === "heads") {
        const heads = await log.heads();
        return { t: "heads-ans", rid: m.rid, heads: [...heads].map(([author, h]) => ({ author, seq: h.seq })) };
      }
      if (m.t === "pull") return { t: "entries", rid: m.rid, entries: await log.exportEntries(m.author, m.after, AUDIT_PAGE) };
      return { t: "err", rid: m.rid, message: `unexpected ${m.t}` };
    },
  });
}

/** What one {@link pullAuditLog} did. */
export interface PullReport {
  /** Entries added to the local log. */
  appended: number;
  /** Authors whose chain here stayed behind the remote's: a page added nothing (a gap, forged or edited entries). */
  behind: string[];
  /** Why the pull ended before every chain was tried: the remote refused or answered out of turn. */
  stopped?: string;
}

/** A request whose refusal by the remote ends the pull (noted in `report`) instead of failing it. */
function asker(requests: RequestChannel<AuditMessage>, report: PullReport): (build: (rid: number) => AuditMessage) => Promise<AuditMessage | undefined> {
  return async (build) => {
    try {
      return await requests.request(build);
    } catch (error) {
      if (!(error instanceof AuditRefusedError)) throw error;
      report.stopped = `${requests.peer} refused: ${error.message}`;
      return undefined;
    }
  };
}

/**
 * The pulling side: asks the remote for its chain heads and, for each chain it
 * is ahead on, pulls pages after the local head until caught up. Entries are
 * ingested page by page, so a relayed chain arrives whoever authored it. A
 * page that adds nothing (a gap, forged or edited entries, an empty page) stops that chain
 * for now: the local copy cannot extend further from this remote until it
 * learns more elsewhere. A refused or unexpected answer stops the pull.
 * Rejects only when the channel fails or an answer is late.
 */
export async function pullAuditLog(requests: RequestChannel<AuditMessage>, log: ReplicatedLog): Promise<PullReport> {
  const report: PullReport = { appended: 0, behind: [] };
  const ask = asker(requests, report);
  const answer = await ask((rid) => ({ t: "heads", rid }));
  if (answer === undefined) return report;
  if (answer.t !== "heads-ans") return { ...report, stopped: `${requests.peer} answered heads with ${answer.t}` };
  return pullChains(requests, log, answer.heads, report);
}

/**
 * Pull the chains named in `heads` (the remote's, as its `tip` said) up to
 * there, as {@link pullAuditLog} does once it knows the remote's heads.
 */
export async function pullChains(requests: RequestChannel<AuditMessage>, log: ReplicatedLog, heads: ChainHeads, report: PullReport = { appended: 0, behind: [] }): Promise<PullReport> {
  const ask = asker(requests, report);
  const mine = await log.heads();
  for (const { author, seq } of heads) {
    let have = mine.get(author)?.seq ?? 0;
    while (have < seq) {
      const page = await ask((rid) => ({ t: "pull", rid, author, after: have }));
      if (page === undefined) return report;
      if (page.t !== "entries") return { ...report, stopped: `${requests.peer} answered a pull with ${page.t}` };
      const { appended } = page.entries.length === 0 ? { appended: 0 } : await log.ingest(page.entries);
      if (appended === 0) {
        report.behind.push(author);
        break;
      }
      have += appended;
      report.appended += appended;
    }
  }
  return report;
}
