import type { Connection, Libp2p, PeerId } from "@libp2p/interface";

/** Whether `connection` goes through a relay rather than straight to the peer. */
export function isRelayed(connection: Connection): boolean {
  return connection.remoteAddr.toString().includes("/p2p-circuit");
}

/** The relay a `/p2p/<relay>/p2p-circuit/...` address goes through; undefined for a direct address. */
export function relayOf(address: string): string | undefined {
  return /\/p2p\/([^/]+)\/p2p-circuit/.exec(address)?.[1];
}

/**
 * The connection to `peer` both ends agree to use when they hold more than
 * one: two members that dial each other at the same moment each end up with
 * two. Both ends pick the same one without talking: a direct connection over
 * a relayed one, then the one dialled by the peer whose id sorts first, then
 * the oldest. Undefined when no unlimited connection to `peer` is open.
 */
export function preferredConnection(libp2p: Libp2p, peer: PeerId): Connection | undefined {
  // A limited connection (a stranger's relay slot) carries only protocols that opted in: never the mesh's.
  const open = libp2p.getConnections(peer).filter((c) => c.status === "open" && c.limits === undefined);
  if (open.length < 2) return open[0];
  const direct = open.filter((c) => !isRelayed(c));
  const candidates = direct.length > 0 ? direct : open;
  const self = libp2p.peerId.toString();
  const remote = peer.toString();
  const lower = self < remote ? "outbound" : "inbound";
  const byLower = candidates.filter((c) => c.direction === lower);
  return (byLower.length > 0 ? byLower : candidates).reduce((a, b) => (b.timeline.open < a.timeline.open ? b : a));
}
