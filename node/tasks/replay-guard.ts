import { CoderClawError } from "../../src/contract/errors.js";

/** Options of {@link createReplayGuard}. */
export interface ReplayGuardOptions {
  /** A submission signed more than this far from our clock is refused, ms. */
  maxClockSkewMs: number;
  /**
   * How far behind a peer's newest submission one of its others may be signed
   * and still be taken, ms: its nonces are kept this long. A peer's submissions
   * travel in order on one stream, so they come nearly in the order it signed
   * them.
   */
  memoryMs: number;
}

/**
 * Refuses replayed submissions. Remembering every nonce for the whole clock
 * window would hold rate x window of them (a member flooding at its allowed
 * rate for the default five minutes: millions); this guard holds a peer's
 * nonces for `memoryMs` only, and refuses anything older than that behind the
 * newest submission it took from the same peer, which it cannot tell from a
 * replay any more.
 */
export interface ReplayGuard {
  /**
   * Records a submission, or throws PERMISSION_DENIED when it was signed too far
   * from `now`, too far behind the peer's newest, or carries a nonce already seen.
   */
  admit(peer: string, issuedAt: number, nonce: Uint8Array, now?: number): void;
  /**
   * Takes back a nonce admitted before a restart (see `ReplayStore`), without the
   * clock checks: what it held then, it holds again. Feed a peer's oldest first.
   */
  restore(peer: string, issuedAt: number, nonce: Uint8Array): void;
  /** Forgets what can no longer be accepted again anyway; returns what it forgot. */
  prune(now?: number): RememberedNonce[];
  /** Nonces held. */
  readonly size: number;
}

/** A nonce a guard holds: the submitting peer, when the submission was signed, the nonce. */
export interface RememberedNonce {
  peer: string;
  issuedAt: number;
  nonce: Uint8Array;
}

interface PeerMemory {
  /** The latest `issuedAt` taken from this peer. */
  newest: number;
  /** Nonce (hex) -> its `issuedAt`, in the order taken. */
  nonces: Map<string, number>;
}

/** See {@link ReplayGuard}. */
export function createReplayGuard(options: ReplayGuardOptions): ReplayGuard {
  const { maxClockSkewMs, memoryMs } = options;
  const peers = new Map<string, PeerMemory>();
  let size = 0;
  const refuse = (message: string): never => {
    throw new CoderClawError("PERMISSION_DENIED", message);
  };
  return {
    admit(peer, issuedAt, nonce, now = Date.now()) {
      if (Math.abs(now - issuedAt) > maxClockSkewMs) refuse("submission timestamp outside the replay window");
      let memory = peers.get(peer);
      if (memory === undefined) peers.set(peer, (memory = { newest: issuedAt, nonces: new Map() }));
      if (issuedAt < memory.newest - memoryMs) refuse(`submission signed over ${memoryMs} ms before this peer's newest one: outside the replay window`);
      const key = Buffer.from(nonce).toString("hex");
      if (memory.nonces.has(key)) refuse("replayed submission");
      memory.nonces.set(key, issuedAt);
      size++;
      if (issuedAt > memory.newest) memory.newest = issuedAt;
    },
    restore(peer, issuedAt, nonce) {
      let memory = peers.get(peer);
      if (memory === undefined) peers.set(peer, (memory = { newest: issuedAt, nonces: new Map() }));
      const key = Buffer.from(nonce).toString("hex");
      if (!memory.nonces.has(key)) size++;
      memory.nonces.set(key, issuedAt);
      if (issuedAt > memory.newest) memory.newest = issuedAt;
    },
    prune(now = Date.now()) {
      const forgotten: RememberedNonce[] = [];
      const forget = (peer: string, key: string, issuedAt: number): void => void forgotten.push({ peer, issuedAt, nonce: Buffer.from(key, "hex") });
      for (const [peer, memory] of peers) {
        // Every submission this peer signed is now outside the clock window: nothing of it can be taken again.
        if (memory.newest < now - maxClockSkewMs) {
          for (const [key, issuedAt] of memory.nonces) forget(peer, key, issuedAt);
          size -= memory.nonces.size;
          peers.delete(peer);
          continue;
        }
        // Anything signed before the floor is refused by it; nonces come nearly in order, so the old ones lead.
        const floor = memory.newest - memoryMs;
        for (const [key, issuedAt] of memory.nonces) {
          if (issuedAt >= floor) break;
          memory.nonces.delete(key);
          forget(peer, key, issuedAt);
          size--;
        }
      }
      return forgotten;
    },
    get size() {
      return size;
    },
  };
}
