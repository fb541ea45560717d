import type { MessageChannel } from "../framing/message-channel.js";
import { PairingError } from "./errors.js";

/**
 * The channel a handshake runs over: any {@link MessageChannel} (a libp2p
 * stream in the mesh, `memoryChannelPair` in tests). Messages are unknown
 * until the handshake validates them, step by step.
 */
export type PairingChannel = MessageChannel<unknown>;

/** One reader per channel, so messages are read in order however many steps ask. */
const readers = new WeakMap<PairingChannel, AsyncIterator<unknown>>();

/** Waits for the next message, failing with PAIRING_TIMEOUT after `timeoutMs`, and PAIRING_PROTOCOL when the channel ends first. */
export async function receiveWithin(channel: PairingChannel, timeoutMs: number): Promise<unknown> {
  let reader = readers.get(channel);
  if (reader === undefined) {
    reader = channel[Symbol.asyncIterator]();
    readers.set(channel, reader);
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PairingError("PAIRING_TIMEOUT", `no pairing message within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const next = await Promise.race([reader.next(), timeout]);
    if (next.done === true) throw new PairingError("PAIRING_PROTOCOL", "the peer closed the channel in the middle of the handshake");
    return next.value;
  } finally {
    clearTimeout(timer);
  }
}
