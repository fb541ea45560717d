import { MalformedFrameError } from "../framing/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import { serveRequests, type ExchangeOptions, type RequestChannel, type RequestShape } from "../framing/request-channel.js";
import type { CapsMessage } from "./messages.js";
import { openNodeRecord, type NodeRecord, type SignedNodeRecord } from "./node-record.js";

/**
 * How caps answers name their request: `record` carries the `n` of its `get`.
 * The protocol has no refusal; a member that will not answer lets the asker's
 * deadline pass.
 */
export const capsRequestShape: RequestShape<CapsMessage> = {
  answerTo: (m) => (m.t === "record" ? m.n : undefined),
  failure: () => undefined,
};

/** Request numbers of the caps protocol start at 0, as they always have on the wire. */
export const CAPS_FIRST_REQUEST = 0;

/**
 * The answering side: every `get` is answered with this node's signed record as
 * it is when asked. Resolves when the remote ends the channel; rejects with
 * what broke it.
 */
export function serveNodeRecord(channel: MessageChannel<CapsMessage>, localRecord: () => Promise<SignedNodeRecord>): Promise<void> {
  return serveRequests(channel, {
    answer: async (m): Promise<CapsMessage | undefined> => (m.t === "get" ? { t: "record", n: m.n, record: (await localRecord()).bytes } : undefined),
  });
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
