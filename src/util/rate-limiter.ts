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
