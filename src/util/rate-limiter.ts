/** Allowance of one remote peer, shared by every channel it has with this node under the protocol that holds it. */
export interface PeerRateLimits {
  /** Sustained frames per second a peer may send. */
  framesPerSecond: number;
  /** Frames a peer may send in a burst above the sustained rate. */
  burst: number;
}

/** Token buckets keyed by peer id; a peer over its allowance gets `false`. */
export interface PeerRateLimiter {
  /** Spend one frame of `peer`'s allowance; false when it has none left. */
  take(peer: string): boolean;
  /** Drop a peer's bucket (it disconnected). */
  forget(peer: string): void;
}

/** Options of {@link createPeerRateLimiter}. */
export interface PeerRateLimiterOptions extends PeerRateLimits {
  /** Most peers tracked at once; the least recently seen is dropped first. Default 4096. */
  maxPeers?: number;
  /** Clock in ms, for tests. Default `performance.now`. */
  now?: () => number;
}

/**
 * Per-peer token buckets, one limiter per protocol, shared by every channel of
 * that protocol, so a peer cannot multiply its allowance by opening more
 * streams. Each protocol holds its own because honest rates differ by orders of
 * magnitude (a burst of submissions against a round of audit heads).
 */
export function createPeerRateLimiter(options: PeerRateLimiterOptions): PeerRateLimiter {
  const { framesPerSecond, burst } = options;
  const maxPeers = options.maxPeers ?? 4096;
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(peer) {
      const t = now();
      let bucket = buckets.get(peer);
      if (bucket === undefined) {
        if (buckets.size >= maxPeers) {
          const oldest = buckets.keys().next().value;
          if (oldest !== undefined) buckets.delete(oldest);
        }
        bucket = { tokens: burst, at: t };
      } else {
        buckets.delete(peer);
        bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) / 1000) * framesPerSecond);
        bucket.at = t;
      }
      buckets.set(peer, bucket);
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    },
    forget(peer) {
      buckets.delete(peer);
    },
  };
}

/**
 * Lets through what a {@link createPeerRateLimiter} of `options` allows per
 * key, for records of events that anyone can cause at will (a refusal
 * audited, say): answers, for one let through, how many of that key were
 * held back since the last one let through, and undefined for one held back.
 */
export function createSampler(options: PeerRateLimiterOptions): (key: string) => number | undefined {
  const limiter = createPeerRateLimiter(options);
  const held = new Map<string, number>();
  return (key) => {
    if (!limiter.take(key)) {
      // Bounded as the limiter's buckets are: a key it forgot starts again from nothing held.
      if (held.size >= (options.maxPeers ?? 4096) && !held.has(key)) held.delete(held.keys().next().value!);
      held.set(key, (held.get(key) ?? 0) + 1);
      return undefined;
    }
    const skipped = held.get(key) ?? 0;
    held.delete(key);
    return skipped;
  };
}
