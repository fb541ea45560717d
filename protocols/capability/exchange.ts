import { MalformedFrameError } from "../framing/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import { serveRequests, type ExchangeOptions, type RequestChannel, type RequestShape } from "../framing/request-channel.js";
import type { CapsMessage } from "./messages.js";
import { openNodeRecord, type NodeRecord, type SignedNodeRecord } from "./node-record.js";

/**
 * How caps answers name their request: `record` carries the `n` of its `get`
 * or `watch`. A watch is a stream that only its asker ends (`unwatch`). The
 * protocol has no refusal; a member that will not answer lets the asker's
 * deadline pass.
 */
export const capsRequestShape: RequestShape<CapsMessage> = {
  answerTo: (m) => (m.t === "record" ? m.n : undefined),
  failure: () => undefined,
  ends: () => false,
  cancel: (n) => ({ t: "unwatch", n }),
};

/** Request numbers of the caps protocol start at 0, as they always have on the wire. */
export const CAPS_FIRST_REQUEST = 0;

/** Watches per member channel at most: an honest asker holds one. */
const MAX_WATCHES_PER_CHANNEL = 4;

/** Who watches this node's record: each gets every new record as it is signed. */
export class RecordWatchers {
  readonly #watches = new Map<MessageChannel<CapsMessage>, Set<number>>();
  #last: SignedNodeRecord | undefined;

  get size(): number {
    return this.#watches.size;
  }

  /** Send `record` to every watcher, unless it is the one sent last. */
  push(record: SignedNodeRecord): void {
    if (record === this.#last) return;
    this.#last = record;
    for (const [channel, ns] of this.#watches) for (const n of ns) void channel.send({ t: "record", n, record: record.bytes }).catch(() => this.#watches.delete(channel));
  }

  add(channel: MessageChannel<CapsMessage>, n: number): void {
    const ns = this.#watches.get(channel) ?? new Set<number>();
    if (ns.size >= MAX_WATCHES_PER_CHANNEL) throw new MalformedFrameError(`${channel.peer} opened more than ${MAX_WATCHES_PER_CHANNEL} watches`, { peer: channel.peer });
    ns.add(n);
    this.#watches.set(channel, ns);
  }

  remove(channel: MessageChannel<CapsMessage>, n?: number): void {
    const ns = this.#watches.get(channel);
    if (n !== undefined) ns?.delete(n);
    if (n === undefined || ns?.size === 0) this.#watches.delete(channel);
  }
}

/**
 * The answering side: every `get` is answered with this node's signed record as
 * it is when asked, every `watch` too and then by `watchers`. Resolves when the
 * remote ends the channel; rejects with what broke it.
 */
export async function serveNodeRecord(channel: MessageChannel<CapsMessage>, localRecord: () => Promise<SignedNodeRecord>, watchers?: RecordWatchers): Promise<void> {
  try {
    await serveRequests(channel, {
      answer: async (m): Promise<CapsMessage | undefined> => {
        if (m.t === "unwatch") watchers?.remove(channel, m.n);
        if (m.t === "watch") watchers?.add(channel, m.n);
        return m.t === "get" || m.t === "watch" ? { t: "record", n: m.n, record: (await localRecord()).bytes } : undefined;
      },
    });
  } finally {
    watchers?.remove(channel);
  }
}

/** A member's record as it answered, with the round trip it took. */
export interface AskedRecord {
  record: NodeRecord;
  /** From sending the request to its answer, ms. */
  latencyMs: number;
}

/**
 * Asks the remote of `requests` for its node record and accepts only one
 * signed by, and describing, that remote (`requests.peer`): a member cannot
 * pass off another node's offer as its own, nor forge one. Rejects when the
 * signal aborts, the deadline passes, the channel ends or the answer is refused.
 */
export async function askNodeRecord(requests: RequestChannel<CapsMessage>, options: Pick<ExchangeOptions<CapsMessage>, "signal" | "timeoutMs"> = {}): Promise<AskedRecord> {
  const started = performance.now();
  const answer = await requests.request((n) => ({ t: "get", n }), options);
  const latencyMs = performance.now() - started;
  if (answer.t !== "record") throw new MalformedFrameError(`${requests.peer} answered a get with ${answer.t}`, { peer: requests.peer });
  const { record } = await openNodeRecord(answer.record);
  if (record.peerId !== requests.peer) throw new MalformedFrameError(`${requests.peer} answered with the record of ${record.peerId}`, { peer: requests.peer });
  return { record, latencyMs };
}

/**
 * Watch the remote's record: `onRecord` gets each one it sends, checked as
 * {@link askNodeRecord} checks, with the round trip of the first. Rejects
 * when the watch ends: the channel closed, `signal` aborted, or a record
 * refused.
 */
export async function watchNodeRecord(requests: RequestChannel<CapsMessage>, onRecord: (asked: AskedRecord) => void, signal?: AbortSignal): Promise<void> {
  const started = performance.now();
  let latencyMs: number | undefined;
  const exchange = requests.open((n) => requests.channel.send({ t: "watch", n }), { stream: true, ...(signal !== undefined && { signal }) });
  try {
    for await (const answer of exchange) {
      latencyMs ??= performance.now() - started;
      if (answer.t !== "record") throw new MalformedFrameError(`${requests.peer} answered a watch with ${answer.t}`, { peer: requests.peer });
      const { record } = await openNodeRecord(answer.record);
      if (record.peerId !== requests.peer) throw new MalformedFrameError(`${requests.peer} answered with the record of ${record.peerId}`, { peer: requests.peer });
      onRecord({ record, latencyMs });
    }
  } finally {
    exchange.close();
  }
}
