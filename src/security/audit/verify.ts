import type * as A from "@automerge/automerge";
import { verifySignature } from "../keys.js";
import { decodeAuditEntry, type DecodedAuditEntry } from "./entry.js";
import { CorruptSegmentError, hex, type SegmentDoc } from "./segments.js";

/** How a chain was broken. */
export type AuditProblemKind = "edited" | "removed" | "reordered" | "forged" | "forked" | "corrupt";

/** The first bad entry of one author's chain. */
export interface AuditProblem {
  author: string;
  kind: AuditProblemKind;
  /** Seq of the bad entry as stored (or the missing seq for a truncated tail); undefined when it could not be decoded. */
  seq: number | undefined;
  /** Where it is stored: segment number and index within the segment. */
  segment: number;
  index: number;
  reason: string;
}

/** Two authentic entries by one author with the same seq: proof the author equivocated. */
export interface ForkEvidence {
  author: string;
  seq: number;
  /** Hashes of the conflicting entries: the chain's first, then the other. */
  hashes: [string, string];
}

/** What {@link verifyChain} needs about one chain. */
export interface ChainInput {
  author: string;
  /** The author's public key; undefined when unknown, which makes every entry forged. */
  key: Uint8Array | undefined;
  segments: AsyncIterable<{ segment: number; doc: A.Doc<SegmentDoc> }>;
  /** Last seq the store's head record names, to catch a truncated tail. */
  recordedHead: number | undefined;
}

/** Result of checking one chain. */
export interface ChainResult {
  entries: number;
  problem?: AuditProblem;
  forks: ForkEvidence[];
}

interface Item {
  segment: number;
  index: number;
  bytes: Uint8Array;
  storedHash: string | undefined;
}

/**
 * Walks one author's chain in stored order: each entry must decode, match its stored
 * hash (else edited), carry a valid signature by the author (else forged), have the
 * next seq and link to the previous entry's hash. A seq that jumps ahead is a
 * reorder when the skipped seq appears later and a removal otherwise; a seq already
 * seen with another hash, or a valid entry whose prev names a different predecessor,
 * is a fork. Stops at the first problem but still collects fork evidence.
 */
export async function verifyChain(input: ChainInput): Promise<ChainResult> {
  const { author, key } = input;
  const forks: ForkEvidence[] = [];
  const seen = new Map<number, string>();
  const forkCandidates: Array<{ item: Item; decoded: DecodedAuditEntry }> = [];
  let expected = 1;
  let prevHash: string | null = null;
  let entries = 0;
  let problem: AuditProblem | undefined;
  let lookingFor: { seq: number; item: Item; found: boolean; stored: number } | undefined;

  const fail = (item: Item, kind: AuditProblemKind, seq: number | undefined, reason: string) => {
    problem = { author, kind, seq, segment: item.segment, index: item.index, reason };
  };

  try {
    await walk();
  } catch (err) {
    if (!(err instanceof CorruptSegmentError)) throw err;
    // Nothing from the segment that does not load onwards can be checked; the chain is reported, never passed.
    problem ??= { author, kind: "corrupt", seq: undefined, segment: err.segment, index: -1, reason: err.message };
    lookingFor = undefined;
  }
  if (lookingFor !== undefined && problem === undefined) finishGap(lookingFor);
  if (problem === undefined && input.recordedHead !== undefined && input.recordedHead > expected - 1) {
    problem = { author, kind: "removed", seq: expected, segment: -1, index: -1, reason: `log ends at seq ${expected - 1} but its head record names seq ${input.recordedHead}` };
  }

  for (const { item, decoded } of forkCandidates) {
    const chainHash = seen.get(decoded.entry.seq);
    if (chainHash === undefined || chainHash === decoded.entry.hash) continue;
    forks.push({ author, seq: decoded.entry.seq, hashes: [chainHash, decoded.entry.hash] });
    const p: AuditProblem | undefined = problem;
    if (p === undefined || (p.seq ?? Infinity) > decoded.entry.seq) {
      problem = { author, kind: "forked", seq: decoded.entry.seq, segment: item.segment, index: item.index, reason: `author signed two entries with seq ${decoded.entry.seq}: ${chainHash} and ${decoded.entry.hash}` };
    }
  }
  return problem === undefined ? { entries, forks } : { entries, problem, forks };

  async function walk(): Promise<void> {
    for await (const { segment, doc } of input.segments) {
      doc.forks.forEach((bytes, index) => {
        const item: Item = { segment, index, bytes, storedHash: undefined };
        try {
          const decoded = decodeAuditEntry(bytes);
          if (key !== undefined && decoded.entry.author === author && verifySignature(key, decoded.signed, decoded.sig)) forkCandidates.push({ item, decoded });
        } catch {
          // Undecodable fork material is no evidence of anything; the chain itself is what is judged.
        }
      });
      if (problem !== undefined && lookingFor === undefined) continue;
      const { entries: list, hashes } = doc;
      for (let index = 0; index < list.length; index++) {
        const stored = hashes[index];
        const item: Item = { segment, index, bytes: list[index] as Uint8Array, storedHash: stored === undefined ? undefined : hex(stored) };
        if (lookingFor !== undefined) {
          if (peekSeq(item.bytes) === lookingFor.seq) lookingFor.found = true;
          continue;
        }
        let decoded: DecodedAuditEntry;
        try {
          decoded = decodeAuditEntry(item.bytes);
        } catch (err) {
          fail(item, "edited", undefined, `entry does not decode: ${(err as Error).message}`);
          break;
        }
        const { entry } = decoded;
        if (item.storedHash !== entry.hash) {
          fail(item, "edited", entry.seq, `hash mismatch: stored ${item.storedHash ?? "(none)"}, content hashes to ${entry.hash}`);
          break;
        }
        if (entry.author !== author) {
          fail(item, "forged", entry.seq, `entry claims author ${entry.author} inside ${author}'s log`);
          break;
        }
        if (key === undefined) {
          fail(item, "forged", entry.seq, `unknown author key for ${author}`);
          break;
        }
        if (!verifySignature(key, decoded.signed, decoded.sig)) {
          fail(item, "forged", entry.seq, `bad signature for author ${author}`);
          break;
        }
        if (entry.seq < expected) {
          const other = seen.get(entry.seq);
          if (other === entry.hash) continue;
          if (other !== undefined) {
            forks.push({ author, seq: entry.seq, hashes: [other, entry.hash] });
            fail(item, "forked", entry.seq, `two entries with seq ${entry.seq}: ${other} and ${entry.hash}`);
          } else {
            fail(item, "reordered", entry.seq, `seq ${entry.seq} stored after seq ${expected - 1}`);
          }
          break;
        }
        if (entry.seq > expected) {
          lookingFor = { seq: expected, item, found: false, stored: entry.seq };
          continue;
        }
        if (entry.prev !== prevHash) {
          fail(item, "forked", entry.seq, `prev ${entry.prev ?? "null"} does not match seq ${expected - 1} (${prevHash ?? "null"})`);
          break;
        }
        seen.set(entry.seq, entry.hash);
        prevHash = entry.hash;
        expected++;
        entries++;
      }
      if (lookingFor?.found === true) {
        finishGap(lookingFor);
        lookingFor = undefined;
      }
    }
  }

  function finishGap(gap: { seq: number; item: Item; found: boolean; stored: number }): void {
    if (problem !== undefined) return;
    fail(
      gap.item,
      gap.found ? "reordered" : "removed",
      gap.stored,
      gap.found ? `seq ${gap.stored} stored where seq ${gap.seq} belongs; seq ${gap.seq} comes later` : `seq ${gap.seq}${gap.stored - 1 > gap.seq ? `..${gap.stored - 1}` : ""} missing before seq ${gap.stored}`,
    );
  }
}

// Only used while looking ahead past a gap, where a damaged entry just does not match.
function peekSeq(bytes: Uint8Array): number | undefined {
  try {
    return decodeAuditEntry(bytes).entry.seq;
  } catch {
    return undefined;
  }
}
