import { FramedChannel } from "../protocols/framing/channel.js";
import { encodeCanonical } from "../identity/index.js";

/**
 * Bytes of every framed message this process sends, by protocol, message kind
 * and (for documents and audit entries) the first segment of what it names:
 * which part of the mesh's replication a cost comes from. Counted at encoding,
 * before muxing and encryption; libp2p's own protocols are not counted.
 */
const tally = new Map<string, number>();

/** The kind of a message, with the document prefixes a sync patch or announcement names. */
function kindsOf(message: Record<string, unknown>): Array<[string, number]> {
  const t = typeof message.t === "string" ? message.t : "?";
  const items = Array.isArray(message.items) ? (message.items as Array<Record<string, unknown>>) : undefined;
  if (items === undefined || items.length === 0 || typeof items[0]?.id !== "string") return [[t, 1]];
  const byPrefix = new Map<string, number>();
  for (const item of items) {
    // Documents are named `<prefix>/...`; signed items by their hash, counted by their kind.
    const id = String(item.id);
    const prefix = `${t} ${id.includes("/") ? id.split("/")[0] : typeof item.kind === "string" ? item.kind : "item"}`;
    byPrefix.set(prefix, (byPrefix.get(prefix) ?? 0) + 1);
  }
  return [...byPrefix].map(([k, n]) => [k, n / items.length]);
}

let started = false;

/** Count from now on (`CC_TALLY=1` in the bench's environment): each message is encoded once more to be counted. */
export function startMessageTally(): void {
  if (started) return;
  started = true;
  const send = FramedChannel.prototype.send;
  FramedChannel.prototype.send = function (this: FramedChannel<unknown>, message: unknown): Promise<void> {
    try {
      const bytes = encodeCanonical(message).byteLength;
      const protocol = this.stream.protocol ?? "?";
      const kinds = typeof message === "object" && message !== null ? kindsOf(message as Record<string, unknown>) : [["?", 1] as [string, number]];
      for (const [kind, share] of kinds) {
        const key = `${protocol} ${kind}`;
        tally.set(key, (tally.get(key) ?? 0) + bytes * share);
      }
    } catch {
      // A message that cannot be encoded is refused by send itself.
    }
    return send.call(this, message);
  };
}

/** Bytes sent so far, by protocol and message kind. */
export function messageTally(): Record<string, number> {
  return Object.fromEntries(tally);
}
