import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import type { CapabilityDirectory } from "../routing/index.js";
import type { Membership } from "./membership.js";

/** A connected peer as `coderclaw peers` shows it. */
export interface PeerInfo {
  peerId: string;
  level: string;
  addrs: string[];
  latencyMs?: number;
  /** From the member's signed capability record, when it answered. */
  agents?: string[];
  capabilities?: string[];
  load?: number;
}

/** What {@link listPeers} reads. */
export interface PeerListSources {
  libp2p: MeshLibp2p;
  directory: Pick<CapabilityDirectory, "members">;
  membership: Pick<Membership, "levelOf">;
}

/** Connected peers, each once, with their trust level, a fresh round-trip time and what their signed record offers. */
export async function listPeers({ libp2p, directory, membership }: PeerListSources): Promise<PeerInfo[]> {
  const records = new Map((await directory.members().catch(() => [])).map((c) => [c.peerId, c.record]));
  const out: PeerInfo[] = [];
  for (const conn of libp2p.getConnections()) {
    const peer = conn.remotePeer.toString();
    if (out.some((p) => p.peerId === peer)) continue;
    const latencyMs = await libp2p.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    const record = records.get(peer);
    out.push({
      peerId: peer,
      level: membership.levelOf(peer),
      addrs: [conn.remoteAddr.toString()],
      ...(latencyMs !== undefined && { latencyMs }),
      ...(record && { agents: record.agents, capabilities: record.capabilities, load: record.load }),
    });
  }
  return out;
}

/** When each peer was last connected to `libp2p` (ms since epoch), since now: `now` while it is connected. */
export function trackLastSeen(libp2p: MeshLibp2p): (peer: string) => number | undefined {
  const seen = new Map<string, number>();
  const touch = (event: CustomEvent<{ toString(): string }>): void => void seen.set(event.detail.toString(), Date.now());
  libp2p.addEventListener("peer:connect", touch);
  libp2p.addEventListener("peer:disconnect", touch);
  return (peer) => (libp2p.getConnections().some((c) => c.remotePeer.toString() === peer) ? Date.now() : seen.get(peer));
}
