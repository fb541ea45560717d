/** Asks a peer for the changes of a document. */
export interface WantTarget {
  /** The peer asked, for reports. */
  readonly peer: string;
  readonly closed: boolean;
  want(id: string): void;
}

/** Options of {@link createWantTracker}. */
export interface WantTrackerOptions {
  /** True when this node holds `id` at (or past) `heads`. */
  holds(id: string, heads: readonly string[]): Promise<boolean>;
  /** An unanswered want is sent again to another announcer after this long. Default 2 s. */
  retryMs?: number;
  /** The store could not say whether it holds a document (it closed, or failed); that want was dropped. */
  onError?: (error: Error, peer: string) => void;
}

/**
 * One want per announced change across all of a node's sessions: several
 * relays may announce the same change at once, and the patch is asked of the
 * first only. The others are kept as fallbacks, asked in turn when the patch
 * has not come within the retry time (the first relay went away).
 */
export interface WantTracker {
  /** `from` announced `id` at `heads`, which this node lacks. */
  announced(id: string, heads: readonly string[], from: WantTarget): void;
  /** A patch of `id` was applied: if it did not reach the newest announced heads, ask again at once. */
  received(id: string): void;
  /** Drop everything and stop the timers. */
  stop(): void;
}

/** Documents awaited at once; past it the oldest is dropped (reconciliation on reconnect still brings it). */
const MAX_PENDING = 10_000;

interface Pending {
  heads: readonly string[];
  asked: WantTarget;
  fallbacks: WantTarget[];
  timer: ReturnType<typeof setTimeout>;
}

/** See {@link WantTracker}. */
export function createWantTracker(options: WantTrackerOptions): WantTracker {
  const retryMs = options.retryMs ?? 2000;
  const pending = new Map<string, Pending>();

  const settle = async (id: string, entry: Pending): Promise<void> => {
    if (pending.get(id) !== entry) return;
    clearTimeout(entry.timer);
    let held: boolean;
    try {
      held = await options.holds(id, entry.heads);
    } catch (error) {
      // Settling runs from timers and patches nobody awaits: a store that cannot answer (the node
      // stopping under an arriving patch) must not become an unhandled rejection. The want is dropped;
      // the next session's reconciliation asks for what is still missing.
      if (pending.get(id) === entry) pending.delete(id);
      options.onError?.(error instanceof Error ? error : new Error(String(error)), entry.asked.peer);
      return;
    }
    if (held) {
      if (pending.get(id) === entry) pending.delete(id);
      return;
    }
    if (pending.get(id) !== entry) return;
    const next = [entry.asked, ...entry.fallbacks].reverse().find((t) => !t.closed);
    if (next === undefined) {
      pending.delete(id);
      return;
    }
    ask(id, entry.heads, next, entry.fallbacks.filter((t) => t !== next));
  };

  const ask = (id: string, heads: readonly string[], target: WantTarget, fallbacks: WantTarget[]): void => {
    const entry: Pending = { heads, asked: target, fallbacks, timer: setTimeout(() => void settle(id, entry), retryMs) };
    entry.timer.unref();
    pending.set(id, entry);
    if (pending.size > MAX_PENDING) {
      const [oldest, dropped] = pending.entries().next().value as [string, Pending];
      clearTimeout(dropped.timer);
      pending.delete(oldest);
    }
    target.want(id);
  };

  return {
    announced(id, heads, from) {
      const entry = pending.get(id);
      if (entry === undefined) return ask(id, heads, from, []);
      entry.heads = heads;
      if (from !== entry.asked && !entry.fallbacks.includes(from)) entry.fallbacks.push(from);
    },
    received(id) {
      const entry = pending.get(id);
      if (entry !== undefined) void settle(id, entry);
    },
    stop() {
      for (const entry of pending.values()) clearTimeout(entry.timer);
      pending.clear();
    },
  };
}
