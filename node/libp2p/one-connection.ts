import type { Connection, Libp2p } from "@libp2p/interface";
import { AUDIT_PROTOCOL } from "../../protocols/audit/messages.js";
import { CAPS_PROTOCOL } from "../../protocols/capability/messages.js";
import { isRelayed, preferredConnection } from "../../protocols/framing/connection-choice.js";
import { STATEMENTS_PROTOCOL } from "../../protocols/statements/messages.js";
import { SYNC_PROTOCOL } from "../../protocols/sync/messages.js";

/**
 * Protocols whose long-lived channels are opened again when they end while the
 * peer is still connected (pair sessions, request pools): a connection
 * carrying only these can be closed, and they carry on over the one kept.
 */
const MOVABLE = new Set([SYNC_PROTOCOL, STATEMENTS_PROTOCOL, CAPS_PROTOCOL, AUDIT_PROTOCOL]);

/** Options of {@link keepOneConnection}. */
export interface KeepOneConnectionOptions {
  /** How often a retiring connection is looked at for streams left. Default 250 ms. */
  pollMs?: number;
  onError: (error: Error) => void;
}

/**
 * Keeps one direct connection per peer. Two members that dial each other at
 * the same moment (both learning of the other at once, after pairing or a
 * cut) each end up with two TCP connections, every protocol split between
 * them and twice the keep-alive traffic. Both ends agree on the one to keep
 * ({@link preferredConnection}, on which every new stream of the mesh's
 * protocols already goes) and retire the other: it is closed once nothing but
 * movable channels remain on it, so a pairing handshake, a task's stream or a
 * blob transfer under way on it finishes first. Relayed connections are left
 * to hole punching, which replaces them by a direct one.
 */
export function keepOneConnection(libp2p: Libp2p, options: KeepOneConnectionOptions): void {
  const retiring = new WeakSet<Connection>();
  const retire = (connection: Connection): void => {
    retiring.add(connection);
    const timer = setInterval(() => {
      if (connection.status !== "open") return clearInterval(timer);
      if (!connection.streams.every((s) => s.protocol !== undefined && MOVABLE.has(s.protocol))) return;
      clearInterval(timer);
      connection.close({ signal: AbortSignal.timeout(2000) }).catch((error: Error) => {
        connection.abort(error);
        options.onError(error);
      });
    }, options.pollMs ?? 250);
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
