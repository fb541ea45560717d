import type { Connection, PeerId } from "@libp2p/interface";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import type { CapabilityDirectory } from "../routing/index.js";
import type { Membership } from "./membership.js";

/** A connected peer as `coderclaw peers` shows it. */
export interface PeerInfo {
  peerId: string;
  /** The device's name in the mesh (see `devices rename`), when it has one. */
  name?: string;
  level: string;
  addrs: string[];
  /** How this node reaches the peer now: straight, or through a relay member (`via`). */
  path: "direct" | "relayed";
  /** The relay's peer id, on a relayed path. */
  via?: string;
  /** When the connection on this path opened (ISO 8601). */
  since: string;
  latencyMs?: number;
  /** From the member's signed capability record, when it answered. */
  agents?: string[];
  capabilities?: string[];
  load?: number;
  /** Slots its record says are not in use (its concurrency less its load). */
  freeSlots?: number;
}

/** What {@link listPeers} reads. */
export interface PeerListSources {
  libp2p: MeshLibp2p;
  directory: Pick<CapabilityDirectory, "members">;
  membership: Pick<Membership, "levelOf">;
}

/** Connected peers, each once (on its best path: direct over relayed), with their trust level, a fresh round-trip time and what their signed record offers. */
export async function listPeers({ libp2p, directory, membership }: PeerListSources): Promise<PeerInfo[]> {
  const records = new Map((await directory.members().catch(() => [])).map((c) => [c.peerId, c.record]));
  const best = new Map<string, Connection>();
  for (const conn of libp2p.getConnections()) {
    const peer = conn.remotePeer.toString();
    best.set(peer, preferred(best.get(peer), conn));
  }
  return Promise.all(
    [...best].map(async ([peer, conn]) => {
      const latencyMs = await libp2p.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      const record = records.get(peer);
      return {
        peerId: peer,
        level: membership.levelOf(peer),
        addrs: [conn.remoteAddr.toString()],
        ...pathOf(conn.remoteAddr.toString()),
        since: new Date(conn.timeline.open).toISOString(),
        ...(latencyMs !== undefined && { latencyMs }),
        ...(record && { agents: record.agents, capabilities: record.capabilities, load: record.load, freeSlots: Math.max(0, record.maxConcurrency - record.load) }),
      };
    }),
  );
}

/** The connection to a peer that its traffic should take: a direct one over a relayed one. */
export function bestConnection(libp2p: MeshLibp2p, peer: PeerId): Connection | undefined {
  return libp2p.getConnections(peer).reduce<Connection | undefined>(preferred, undefined);
}

function preferred(held: Connection | undefined, candidate: Connection): Connection {
  return held === undefined || (pathOf(held.remoteAddr.toString()).path === "relayed" && pathOf(candidate.remoteAddr.toString()).path === "direct") ? candidate : held;
}

/** The path a connection's remote address describes: a circuit address names its relay just before `/p2p-circuit`. */
export function pathOf(remoteAddr: string): { path: "direct" } | { path: "relayed"; via: string } {
  const relayed = /\/p2p\/([^/]+)\/p2p-circuit(\/|$)/.exec(remoteAddr);
  return relayed === null ? { path: "direct" } : { path: "relayed", via: relayed[1]! };
}

/** When each peer was last connected to `libp2p` (ms since epoch), since now: `now` while it is connected. */
export function trackLastSeen(libp2p: MeshLibp2p): (peer: string) => number | undefined {
  const seen = new Map<string, number>();
  const touch = (event: CustomEvent<{ toString(): string }>): void => void seen.set(event.detail.toString(), Date.now());
  libp2p.addEventListener("peer:connect", touch);
  libp2p.addEventListener("peer:disconnect", touch);
  return (peer) => (libp2p.getConnections().some((c) => c.remotePeer.toString() === peer) ? Date.now() : seen.get(peer));
}
