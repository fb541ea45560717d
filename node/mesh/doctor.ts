import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import type { ReachabilityReport } from "../libp2p/reachability.js";
import type { PortMappingReport } from "../libp2p/router-port-mapping.js";
import { pathOf, type PeerInfo } from "./peer-list.js";

/** What `coderclaw doctor` reports of this node's reach, each finding with a hint where something is off. */
export interface DoctorReport {
  reachability: ReachabilityReport;
  /** Addresses this node listens on (relayed ones excluded). */
  listening: string[];
  /** Relay members this node holds a slot on (it advertises an address through each). */
  relaysReserved: string[];
  /** Whether this node serves relay to members now. */
  relayServing: boolean;
  /** Ports the home router forwards to this node (UPnP or NAT-PMP; `off` unless the node was started with `upnp`). */
  portMapping: PortMappingReport;
  /** Each connected member's path, as `coderclaw peers` shows it. */
  members: Array<Pick<PeerInfo, "peerId" | "path" | "via" | "latencyMs" | "since">>;
  /** What to do about what was found, one line each. */
  hints: string[];
}

/** Sources {@link doctorReport} reads. */
export interface DoctorSources {
  libp2p: MeshLibp2p;
  reachability: () => ReachabilityReport;
  relayServing: () => boolean;
  portMapping: () => PortMappingReport;
  peers: () => Promise<PeerInfo[]>;
}

/** Gather the report; nothing here dials or changes anything but the peers' pings. */
export async function doctorReport(sources: DoctorSources): Promise<DoctorReport> {
  const addrs = sources.libp2p.getMultiaddrs().map((a) => a.toString());
  const listening = addrs.filter((a) => !a.includes("/p2p-circuit"));
  const relaysReserved = [...new Set(addrs.map((a) => pathOf(a)).flatMap((p) => (p.path === "relayed" ? [p.via] : [])))];
  const reachability = sources.reachability();
  const peers = await sources.peers();
  const portMapping = sources.portMapping();
  const hints: string[] = [];
  if (listening.every((a) => /\/ip4\/127\.|\/ip6\/::1\//.test(a))) hints.push("this node listens on loopback only: start it with --listen /ip4/0.0.0.0/tcp/4001 so other machines can reach it");
  if (reachability.reachability === "unknown") hints.push("reachability unknown: no member over a direct connection has been asked yet (connect to a member, or run a relay member others can dial)");
  if (reachability.reachability === "private" && relaysReserved.length === 0) hints.push("behind a NAT with no relay slot: members on other networks cannot reach this node; run a publicly reachable member with relay (runtime.yaml `relay: true`) or forward this node's port");
  if (reachability.reachability === "private" && reachability.portPreserving === false) hints.push("this NAT gives each connection a new port (symmetric): direct paths to members behind NATs cannot be punched, their traffic goes through a relay");
  if (portMapping.state === "no-router") hints.push("port mapping is on but no router answered UPnP or NAT-PMP: enable UPnP (or NAT-PMP) on the router, or forward this node's port by hand");
  for (const m of portMapping.mappings) if (m.state === "failed") hints.push(`the router ${m.router} refused to forward ${m.internal} (${m.error ?? "no reason given"}): forward it by hand, or check the router's UPnP settings`);
  for (const p of peers) if (p.path === "relayed") hints.push(`member ${p.peerId} is reached through relay ${p.via ?? "?"}: slower than a direct path; hole punching replaces it where both NATs keep ports`);
  return {
    reachability,
    listening,
    relaysReserved,
    relayServing: sources.relayServing(),
    portMapping,
    members: peers.map((p) => ({ peerId: p.peerId, path: p.path, ...(p.via !== undefined && { via: p.via }), ...(p.latencyMs !== undefined && { latencyMs: p.latencyMs }), since: p.since })),
    hints,
  };
}
