import type { Connection, Libp2p } from "@libp2p/interface";
import { isRelayed, preferredConnection } from "../../protocols/framing/connection-choice.js";

/** Options of {@link keepOneConnection}. */
export interface KeepOneConnectionOptions {
  /** Longest a second connection is kept for the streams it still carries. Default 3 s. */
  graceMs?: number;
  /** How often a retiring connection is looked at for streams left. Default 100 ms. */
  pollMs?: number;
  onError: (error: Error) => void;
}

/**
 * Keeps one direct connection per peer. Two members that dial each other at
 * the same moment (both learning of the other at once, after pairing or a
 * cut) each end up with two TCP connections, every protocol split between
 * them and twice the keep-alive traffic. Both ends agree on the one to keep
 * ({@link preferredConnection}, on which every new stream of the mesh's
 * protocols already goes) and retire the other: it is closed once its
 * streams have ended, or after a grace period, so a request under way on it
 * finishes; a long-lived session on it ends there and is opened again on the
 * one kept. Relayed connections are left to hole punching, which replaces
 * them by a direct one.
 */
export function keepOneConnection(libp2p: Libp2p, options: KeepOneConnectionOptions): void {
  const graceMs = options.graceMs ?? 3000;
  const pollMs = options.pollMs ?? 100;
  const retiring = new WeakSet<Connection>();
  const retire = (connection: Connection): void => {
    retiring.add(connection);
    const until = Date.now() + graceMs;
    const timer = setInterval(() => {
      if (connection.status !== "open") return clearInterval(timer);
      if (connection.streams.length > 0 && Date.now() < until) return;
      clearInterval(timer);
      connection.close({ signal: AbortSignal.timeout(2000) }).catch((error: Error) => {
        connection.abort(error);
        options.onError(error);
      });
    }, pollMs);
    timer.unref();
  };
  libp2p.addEventListener("connection:open", (event) => {
    const peer = event.detail.remotePeer;
    const direct = libp2p.getConnections(peer).filter((c) => c.status === "open" && !isRelayed(c));
    if (direct.length < 2) return;
    const keep = preferredConnection(libp2p, peer);
    for (const c of direct) if (c !== keep && !retiring.has(c)) retire(c);
  });
}
