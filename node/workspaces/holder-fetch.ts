import { ChannelClosedError, FramingError } from "../../protocols/framing/errors.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { DigestMismatchError } from "../../src/workspace/blob-store.js";

/** Who may hold a tree, as the fetcher knows it. */
export interface HolderHints {
  /** The submitter of the task the tree belongs to: asked first when connected. */
  owner?: string | undefined;
  /** Members named by the caller (`--from`), asked next, in order. */
  holders?: readonly string[] | undefined;
  /** The member the task's completion names as holding its result. */
  heldBy?: string | undefined;
}

/**
 * The order in which members are asked for a tree: its submitter when
 * connected, the members named, the recorded holder, every other connected
 * member (one may have fetched it), and last a submitter not connected now
 * (dialling it may wait out a timeout).
 */
export function holderOrder(hints: HolderHints, connected: readonly string[], self: string): string[] {
  const isConnected = (peer: string | undefined): peer is string => peer !== undefined && connected.includes(peer);
  const order = [...(isConnected(hints.owner) ? [hints.owner] : []), ...(hints.holders ?? []), ...(hints.heldBy === undefined ? [] : [hints.heldBy]), ...connected, ...(hints.owner === undefined ? [] : [hints.owner])];
  return [...new Set(order)].filter((peer) => peer !== self);
}

/** Whether `error` shows the holder misbehaved (bytes not matching their digest, a stall, a flood, a malformed answer), not that it refused. */
export function holderMisbehaved(error: unknown): boolean {
  return error instanceof DigestMismatchError || (error instanceof FramingError && !(error instanceof ChannelClosedError));
}

/**
 * Runs `attempt` against each holder in turn until one succeeds: a holder that
 * refuses, lacks the tree, cannot be reached or misbehaves (it is cut off by
 * the client, and `onFailure` told) is passed over, and what the next one is
 * asked for is only what is still missing. Fails naming every holder and why.
 */
export async function fromHolders<T>(what: string, holders: readonly string[], attempt: (peer: string) => Promise<T>, onFailure: (peer: string, error: Error) => void, signal?: AbortSignal): Promise<T> {
  const failures: string[] = [];
  for (const peer of holders) {
    try {
      return await attempt(peer);
    } catch (error) {
      if (signal?.aborted === true) throw error;
      onFailure(peer, error as Error);
      failures.push(`${peer}: ${(error as Error).message}`);
    }
  }
  throw new CoderClawError("NOT_FOUND", failures.length === 0 ? `${what}: no member is known to hold it` : `${what}: no member gave it (${failures.join("; ")})`);
}
