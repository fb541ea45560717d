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
  list(): T[] | Promise<T[]>;
  /** Call `listener` whenever a request may have been asked or decided; returns the function that stops it. */
  watch(listener: () => void): () => void;
}

/** Serves a stream of events on `reply` (the server's SSE writer, which bounds and ends it). */
export type ApprovalStreamWriter<T> = (reply: FastifyReply, events: (signal: AbortSignal) => AsyncIterable<ApprovalStreamEvent<T>>) => Promise<void>;

/**
 * Until when a request waits: past it the request is denied (by its holder's
 * timer, or by every member's reading of the statement), so the stream takes it
 * off then, whether or not anything else happens.
 */
export type DeadlineOf<T> = (request: T) => number;

/**
 * The requests open now, `synced`, then each request as it is asked and decided
 * (keyed by `keyOf`), until `signal` aborts. A request whose deadline has passed
 * counts as decided: the stream wakes at the earliest deadline it holds.
 */
export async function* approvalEvents<T>(requests: WatchedRequests<T>, keyOf: (request: T) => string, deadlineOf: DeadlineOf<T>, signal: AbortSignal): AsyncGenerator<ApprovalStreamEvent<T>> {
  let seq = 1;
  let wake: (() => void) | undefined;
  let changed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = requests.watch(() => {
    changed = true;
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  const open = async (): Promise<Map<string, T>> => {
    const listed = await requests.list();
    const now = Date.now();
    return new Map(listed.filter((a) => deadlineOf(a) > now).map((a) => [keyOf(a), a]));
  };
  const wakeAtDeadline = (held: Map<string, T>): void => {
    clearTimeout(timer);
    if (held.size === 0) return;
    // A loop, not Math.min(...all): members add requests to the set, and past ~120,000 arguments a spread throws.
    let next = Infinity;
    for (const a of held.values()) next = Math.min(next, deadlineOf(a));
    // setTimeout takes at most 2^31-1 ms; a later deadline is met by waking again.
    timer = setTimeout(() => {
      changed = true;
      wake?.();
    }, Math.min(MAX_TIMER_MS, Math.max(0, next - Date.now() + 1)));
  };
  try {
    let held = await open();
    for (const a of held.values()) yield { seq: seq++, type: "open", approval: a };
    yield { seq: seq++, type: "synced" };
    while (!signal.aborted) {
      wakeAtDeadline(held);
      if (!changed) await new Promise<void>((resolve) => (wake = resolve));
      changed = false;
      const now = await open();
      for (const [id, a] of now) if (!held.has(id)) yield { seq: seq++, type: "asked", approval: a };
      for (const [id, a] of held) if (!now.has(id)) yield { seq: seq++, type: "decided", approval: a };
      held = now;
    }
  } finally {
    clearTimeout(timer);
    stop();
    signal.removeEventListener("abort", onAbort);
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a request is for (a workflow, a task), as a read check sees it: its id, and the session it belongs to (none: the node owner's). */
export interface RequestOwner {
  id: string;
  sessionId?: string;
}

/**
 * How one caller sees requests. A request tells of what it holds (a
 * workflow's step and prompt, a task's description), so a caller sees those
 * of what it may read, as it sees workflows and tasks; and every one when it
 * may decide them, as an approver must see what it may decide.
 */
export interface RequestViewer<T> {
  /** Whether the caller may decide requests, so sees them all; asked at each listing, as a role may be revoked meanwhile. */
  seesAll(): Promise<boolean>;
  /** What `request` is for; undefined when it cannot be found. */
  ownerOf(request: T): Promise<RequestOwner | undefined>;
  /** Whether the caller may read `owner`: the unaudited check that filters listings (no entry per request listed). */
  mayRead(owner: RequestOwner): Promise<boolean>;
}

/**
 * `requests` as `viewer` sees them, at every listing: an event stream's later
 * requests are filtered as its first are. What a request is for never changes,
 * so its owner is looked up once while the view lists it (a stream lists on
 * every change, and a task's owner may be another member, asked over the mesh);
 * whether the caller may read it is asked each time.
 */
export function requestsSeenBy<T>(requests: WatchedRequests<T>, keyOf: (request: T) => string, viewer: RequestViewer<T>): WatchedRequests<T> {
  let owners = new Map<string, Promise<RequestOwner | undefined>>();
  return {
    watch: (listener) => requests.watch(listener),
    async list() {
      const listed = await requests.list();
      if (await viewer.seesAll()) return listed;
      const known = owners;
      // A request whose owner cannot be established is not shown: hidden, not leaked.
      owners = new Map(listed.map((r) => [keyOf(r), known.get(keyOf(r)) ?? viewer.ownerOf(r).catch(() => undefined)]));
      const seen: T[] = [];
      for (const r of listed) {
        const owner = await owners.get(keyOf(r));
        if (owner !== undefined && (await viewer.mayRead(owner))) seen.push(r);
      }
      return seen;
    },
  };
}
