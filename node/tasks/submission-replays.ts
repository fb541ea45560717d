import type { SubmissionReplays } from "../../protocols/task/server.js";
import { createReplayGuard, type ReplayGuardOptions } from "./replay-guard.js";
import type { ReplayStore } from "./replay-store.js";

/** Options of {@link loadSubmissionReplays}. */
export interface SubmissionReplaysOptions extends ReplayGuardOptions {
  /** Where the nonces of taken submissions survive a restart; without one, they live in memory only. */
  store?: ReplayStore;
  /** A failure to forget nonces in the store: reported, never thrown. */
  onError?: (error: Error) => void;
}

/**
 * The task executor's replay check: a {@link createReplayGuard} in memory,
 * restored from and written through to `store`, so a submission replayed after
 * a restart is refused as it would have been before.
 */
export async function loadSubmissionReplays(options: SubmissionReplaysOptions): Promise<SubmissionReplays> {
  const { store } = options;
  const guard = createReplayGuard(options);
  const forget = (forgotten: ReturnType<typeof guard.prune>): void => {
    if (forgotten.length > 0) store?.forget(forgotten).catch((err: unknown) => options.onError?.(err as Error));
  };
  if (store !== undefined) {
    for (const e of await store.load()) guard.restore(e.peer, e.issuedAt, e.nonce);
    forget(guard.prune());
  }
  return {
    admit(peer, issuedAt, nonce) {
      guard.admit(peer, issuedAt, nonce);
      return store?.remember({ peer, issuedAt, nonce });
    },
    prune: () => forget(guard.prune()),
  };
}
