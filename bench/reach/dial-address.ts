import type { Connection, Libp2p } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { CoderClawError } from "../../src/contract/errors.js";
import { isRelayed } from "../../protocols/framing/connection-choice.js";

/**
 * A host's `dial` command: dial `addr` itself, now. libp2p joins a dial to a
 * peer with any dial to that peer already under way (a member redial, a
 * discovery, the dispatcher's reach), which first tries its own addresses one
 * after the other, 6 s each, and only then the one added: a test's dial of one
 * address waited behind addresses whose packets a NAT drops silently, until its
 * 10 s ran out (R's dial to A's port-mapped address in test/reach/upnp.test.ts,
 * about 1 in 15 runs had one under way). A direct address is therefore dialled
 * without its peer id, which joins no other dial, and the key the Noise
 * handshake proved is checked against the id it names; the gater still decides
 * on that key as for any dial. (The node's own `dial` keeps libp2p's way, with
 * one retry when the joined dial ends for want of addresses, node/libp2p/dial-addresses.ts:
 * dialling peerless there made test/mesh/incident-cut.test.ts fail 3 runs in 4, not understood.)
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
