import type { Connection, Libp2p } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { CoderClawError } from "../../src/contract/errors.js";
import { isRelayed } from "../../protocols/framing/connection-choice.js";

/**
 * Dial `addr` itself, now. libp2p joins a dial to a peer with
 * any dial to that peer already under way (a member redial, a discovery, the
 * dispatcher's reach), which first tries its own addresses one after the other
 * and only then the one added: an address asked for by name waited behind one
 * whose packets a NAT drops silently, until the caller's time ran out (seen as
 * R's dial to a member's port-mapped address timing out, test/reach/upnp.test.ts).
 * A direct address is therefore dialled without its peer id, which joins no
 * other dial, and the key the Noise handshake proved is checked against the id
 * it names; the gater still decides on that key as for any dial.
 */
export async function dialAddress(libp2p: Libp2p, addr: string, signal: AbortSignal): Promise<Connection> {
  const ma = multiaddr(addr);
  const id = /\/p2p\/([^/]+)$/.exec(addr)?.[1];
  // Without an id there is no peer to join a dial of; a relayed address needs it to be dialled at all.
  if (id === undefined || addr.includes("/p2p-circuit")) return libp2p.dial(ma, { signal });
  const peer = peerIdFromString(id);
  const existing = libp2p.getConnections(peer).find((c) => c.status === "open" && !isRelayed(c) && c.limits === undefined);
  if (existing !== undefined) return existing;
  const connection = await libp2p.dial(multiaddr(addr.slice(0, -`/p2p/${id}`.length)), { signal });
  if (!connection.remotePeer.equals(peer)) {
    connection.abort(new Error("not the peer the address names"));
    throw new CoderClawError("UNAVAILABLE", `${addr}: the node there is ${connection.remotePeer.toString()}, not ${id}`);
  }
  return connection;
}
