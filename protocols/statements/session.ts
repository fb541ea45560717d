import { MalformedFrameError, PeerLimitError } from "../framing/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { MAX_IDS_PER_MESSAGE, MAX_ITEMS_PER_MESSAGE, type StatementsMessage, type WireItem } from "./messages.js";

/** Why an offered item was not taken. */
export interface RefusedItem {
  id: string;
  kind: WireItem["kind"];
  reason: string;
  /**
   * True when the item is not what it claims (bad signature, wrong hash,
   * malformed): no honest node sends one. False for a valid statement that does
   * not belong here (another mesh's).
   */
  offence: boolean;
}

/** The grow-only set a session reconciles: what it holds, and a way to offer it more. */
export interface ItemSet {
  readonly size: number;
  /** A digest of every id held: equal digests, equal sets. */
  digest(): string;
  ids(): string[];
  get(id: string): WireItem | undefined;
  /** Verify and keep what is new; `from` names the peer it came from. */
  add(items: readonly WireItem[], from: string): Promise<{ refused: RefusedItem[] }>;
}

/** Ids one reconciliation may carry; far above any real set, it only stops a peer that never sends `last`. */
const MAX_PENDING_IDS = 1_000_000;
/** Bytes of items per message, well inside the codec's limit. */
const TARGET_ITEMS_BYTES = 1024 * 1024;

/** Send `items` in as few messages as the limits allow. */
export async function sendItems(channel: MessageChannel<StatementsMessage>, items: readonly WireItem[]): Promise<void> {
  for (const run of runsBySize([...items], (i) => i.bytes.byteLength + 80, TARGET_ITEMS_BYTES)) {
    for (let i = 0; i < run.length; i += MAX_ITEMS_PER_MESSAGE) {
      await channel.send({ t: "items", items: run.slice(i, i + MAX_ITEMS_PER_MESSAGE).map((x) => ({ id: x.id, kind: x.kind, bytes: x.bytes })) });
    }
  }
}

/**
 * One reconciliation session of the statements protocol, both sides alike:
 * each says what it holds (a count and a digest); where the digests differ
 * both send their ids and then the items the other lacks. Items the peer sends
 * later are offered to the set as they come. Every refused item is reported;
 * one that is not what it claims ends the session. Resolves when the peer ends
 * the channel.
 */
export async function runStatementsSession(channel: MessageChannel<StatementsMessage>, set: ItemSet, onRefused?: (refused: RefusedItem) => void): Promise<void> {
  const peer = channel.peer;
  let theirs: string[] = [];
  await channel.send({ t: "have", count: set.size, digest: set.digest() });
  for await (const message of channel) {
    if (message.t === "have") {
      if (message.digest === set.digest()) continue;
      const ids = set.ids();
      for (let i = 0; i === 0 || i < ids.length; i += MAX_IDS_PER_MESSAGE) {
        await channel.send({ t: "ids", ids: ids.slice(i, i + MAX_IDS_PER_MESSAGE), last: i + MAX_IDS_PER_MESSAGE >= ids.length });
      }
    } else if (message.t === "ids") {
      theirs.push(...message.ids);
      if (theirs.length > MAX_PENDING_IDS) throw new PeerLimitError(`${peer} sent more than ${MAX_PENDING_IDS} ids`, peer);
      if (!message.last) continue;
      const known = new Set(theirs);
      theirs = [];
      const missing: WireItem[] = [];
      for (const id of set.ids()) if (!known.has(id)) missing.push(set.get(id)!);
      await sendItems(channel, missing);
    } else {
      const { refused } = await set.add(message.items, peer);
      for (const r of refused) onRefused?.(r);
      const offence = refused.find((r) => r.offence);
      if (offence !== undefined) throw new MalformedFrameError(`statements session cut: ${offence.reason}`, { peer });
    }
  }
}
