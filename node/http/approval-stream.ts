import type { FastifyReply } from "fastify";

/**
 * A change of what waits for a decision, as an approvals event stream sends it:
 * each request open when the stream starts (`open`), then `synced` once they all
 * have been sent (so a client that reconnects knows its list is whole again), then
 * each request as it is `asked` and `decided`.
 */
export type ApprovalStreamEvent<T> = { seq: number; type: "open" | "asked" | "decided"; approval: T } | { seq: number; type: "synced" };

/** Requests waiting for a decision, and a way to hear that they may have changed. */
export interface WatchedRequests<T> {
  list(): T[];
  /** Call `listener` whenever a request may have been asked or decided; returns the function that stops it. */
  watch(listener: () => void): () => void;
}

/** Serves a stream of events on `reply` (the server's SSE writer, which bounds and ends it). */
export type ApprovalStreamWriter<T> = (reply: FastifyReply, events: (signal: AbortSignal) => AsyncIterable<ApprovalStreamEvent<T>>) => Promise<void>;

/** The requests open now, `synced`, then each request as it is asked and decided (keyed by `keyOf`), until `signal` aborts. */
export async function* approvalEvents<T>(requests: WatchedRequests<T>, keyOf: (request: T) => string, signal: AbortSignal): AsyncGenerator<ApprovalStreamEvent<T>> {
  let seq = 1;
  let wake: (() => void) | undefined;
  let changed = false;
  const stop = requests.watch(() => {
    changed = true;
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let held = new Map(requests.list().map((a) => [keyOf(a), a]));
    for (const a of held.values()) yield { seq: seq++, type: "open", approval: a };
    yield { seq: seq++, type: "synced" };
    while (!signal.aborted) {
      if (!changed) await new Promise<void>((resolve) => (wake = resolve));
      changed = false;
      const now = new Map(requests.list().map((a) => [keyOf(a), a]));
      for (const [id, a] of now) if (!held.has(id)) yield { seq: seq++, type: "asked", approval: a };
      for (const [id, a] of held) if (!now.has(id)) yield { seq: seq++, type: "decided", approval: a };
      held = now;
    }
  } finally {
    stop();
    signal.removeEventListener("abort", onAbort);
  }
}
