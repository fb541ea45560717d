import { peerIdFromString } from "@libp2p/peer-id";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import { bestConnection, pathOf } from "./peer-list.js";

/** What `coderclaw ping` reports: the path measured and each round trip. */
export interface PingReport {
  peerId: string;
  path: "direct" | "relayed";
  /** The relay's peer id, on a relayed path. */
  via?: string;
  /** The remote address of the connection the pings crossed. */
  addr: string;
  /** One round-trip time per ping, ms. */
  rttMs: number[];
}

/**
 * Pings `peer` `count` times over the connection this node uses for it (dialling
 * one first when there is none, through a relay if that is the only way), and
 * says which path that was. A ping that gets no answer within `timeoutMs` fails
 * the whole measurement, naming how many answered.
 */
export async function pingPeer(libp2p: MeshLibp2p, peer: string, count: number, timeoutMs = 5000): Promise<PingReport> {
  const id = peerIdFromString(peer);
  const connection = bestConnection(libp2p, id) ?? (await libp2p.dial(id, { signal: AbortSignal.timeout(timeoutMs) }));
  const rttMs: number[] = [];
  for (let i = 0; i < count; i++) {
    try {
      rttMs.push(await libp2p.services.ping.ping(connection.remoteAddr, { signal: AbortSignal.timeout(timeoutMs) }));
    } catch (err) {
      throw new Error(`ping ${i + 1} of ${count} to ${peer} got no answer in ${timeoutMs} ms (${rttMs.length} answered): ${(err as Error).message}`, { cause: err });
    }
  }
  const addr = connection.remoteAddr.toString();
  return { peerId: peer, ...pathOf(addr), addr, rttMs };
}
