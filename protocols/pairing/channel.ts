import { PairingError } from "./errors.js";

/**
 * A bidirectional message channel. The mesh binds it to a libp2p stream (with
 * its own framing and size limit); tests and in-process use bind it to
 * {@link memoryChannelPair}.
 */
export interface PairingChannel {
  send(msg: unknown): Promise<void>;
  receive(): Promise<unknown>;
}

/** Waits for the next message, failing with PAIRING_TIMEOUT after `timeoutMs`. */
export async function receiveWithin(channel: PairingChannel, timeoutMs: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PairingError("PAIRING_TIMEOUT", `no pairing message within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([channel.receive(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Two connected in-memory channel ends. Messages are structured-cloned, so a
 * side never shares objects with the other, as over a real wire.
 */
export function memoryChannelPair(): [PairingChannel, PairingChannel] {
  const make = (inbox: unknown[], waiters: ((msg: unknown) => void)[], outbox: unknown[], outWaiters: ((msg: unknown) => void)[]): PairingChannel => ({
    async send(msg) {
      const copy = structuredClone(msg);
      const waiter = outWaiters.shift();
      if (waiter !== undefined) waiter(copy);
      else outbox.push(copy);
    },
    receive() {
      if (inbox.length > 0) return Promise.resolve(inbox.shift());
      return new Promise((resolve) => waiters.push(resolve));
    },
  });
  const aInbox: unknown[] = [];
  const bInbox: unknown[] = [];
  const aWaiters: ((msg: unknown) => void)[] = [];
  const bWaiters: ((msg: unknown) => void)[] = [];
  return [make(aInbox, aWaiters, bInbox, bWaiters), make(bInbox, bWaiters, aInbox, aWaiters)];
}
