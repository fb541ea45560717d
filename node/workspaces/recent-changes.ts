import { toBase64Url } from "../../identity/bytes.js";
import type { ResultSources } from "./code-workspaces.js";
import type { OpenedChanges } from "./task-result.js";

/** How long an opened result is kept after its last read, ms. */
const KEEP_MS = 60_000;
/** How many opened results are kept at once. */
const MAX_KEPT = 16;

/** Opens a task's changes: {@link openTaskChanges} bound to a node. */
export type OpenChanges = (taskId: string, sources?: Omit<ResultSources, "owner">) => Promise<OpenedChanges>;

/**
 * Task changes opened once and kept for a while: a client reading a result a
 * file or a blob at a time (an HTTP request, or a control socket call, each)
 * would otherwise read the task's events and the result's manifest again for
 * each, a cost that grows with the result: 3,000 artifacts took a minute.
 * Opens of one result at once share one; a failed open is not kept, so that
 * a refused result is refused (and audited) each time it is asked for. What
 * is kept is what the opening found; the bytes are read from the store at
 * each read, so a result released meanwhile is answered as such.
 */
export class RecentChanges {
  readonly #open: OpenChanges;
  readonly #now: () => number;
  readonly #kept = new Map<string, { opened: Promise<OpenedChanges>; used: number }>();

  constructor(open: OpenChanges, now: () => number = Date.now) {
    this.#open = open;
    this.#now = now;
  }

  /** The changes of `taskId`, fetched with `sources` when not held here; see {@link openTaskChanges}. */
  open(taskId: string, sources: Omit<ResultSources, "owner"> = {}): Promise<OpenedChanges> {
    const now = this.#now();
    for (const [key, entry] of this.#kept) if (now - entry.used >= KEEP_MS) this.#kept.delete(key);
    const key = JSON.stringify([taskId, sources.grant === undefined ? null : toBase64Url(sources.grant), sources.holders ?? []]);
    const kept = this.#kept.get(key);
    if (kept !== undefined) {
      // Map order is the order of last use: the oldest goes first when room is needed.
      this.#kept.delete(key);
      this.#kept.set(key, { ...kept, used: now });
      return kept.opened;
    }
    const opened = this.#open(taskId, sources);
    this.#kept.set(key, { opened, used: now });
    opened.catch(() => {
      if (this.#kept.get(key)?.opened === opened) this.#kept.delete(key);
    });
    while (this.#kept.size > MAX_KEPT) this.#kept.delete(this.#kept.keys().next().value!);
    return opened;
  }

  /** Keep nothing opened so far. */
  forget(): void {
    this.#kept.clear();
  }
}
