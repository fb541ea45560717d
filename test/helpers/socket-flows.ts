import { Socket } from "node:net";
import type { CoderClawNode } from "../../node/index.js";

/** Bytes written to TCP sockets of this process, by `<local port>><remote port>`. */
const flows = new Map<string, number>();
let installed = false;

/**
 * Counts every byte this process writes to a TCP socket from now on, by the
 * socket's ports, so bytes between in-process nodes can be told apart by
 * direction ({@link bytesBetween}).
 */
export function countSocketFlows(): void {
  if (installed) return;
  installed = true;
  const write = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    const n = chunk instanceof Uint8Array ? chunk.byteLength : typeof chunk === "string" ? Buffer.byteLength(chunk) : 0;
    const key = `${this.localPort}>${this.remotePort}`;
    flows.set(key, (flows.get(key) ?? 0) + n);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  };
}

/** A copy of the counts so far, to subtract from a later one. */
export function flowMark(): Map<string, number> {
  return new Map(flows);
}

const portOf = (addr: string): number | undefined => {
  const m = /\/tcp\/(\d+)/.exec(addr);
  return m === null ? undefined : Number(m[1]);
};

/**
 * Bytes each node wrote to each other node since `mark`, as `"i>j"` (indexes
 * into `nodes`). A socket's owner and peer are found from the nodes' listening
 * ports and the remote ports of their open connections, so the connections
 * must still be open.
 */
export function bytesBetween(nodes: readonly CoderClawNode[], mark: Map<string, number>): Map<string, number> {
  const listening = new Map<number, number>();
  nodes.forEach((n, i) => {
    for (const a of n.multiaddrs()) {
      const p = portOf(a);
      if (p !== undefined) listening.set(p, i);
    }
  });
  const index = new Map(nodes.map((n, i) => [n.peerId, i]));
  // On node i, a connection whose remote port is p: the socket at port p belongs to that connection's peer.
  const byRemotePort = new Map<number, { at: number; peer: number }>();
  nodes.forEach((n, i) => {
    for (const c of n.libp2p.getConnections()) {
      const p = portOf(c.remoteAddr.toString());
      const peer = index.get(c.remotePeer.toString());
      if (p !== undefined && peer !== undefined && !listening.has(p)) byRemotePort.set(p, { at: i, peer });
    }
  });
  const out = new Map<string, number>();
  for (const [key, total] of flows) {
    const bytes = total - (mark.get(key) ?? 0);
    if (bytes === 0) continue;
    const [local, remote] = key.split(">").map(Number) as [number, number];
    // Accepted socket: its local port is the owner's listening port; dialled socket: its remote port is the peer's.
    const from = listening.get(local) ?? byRemotePort.get(local)?.peer;
    const to = listening.get(remote) ?? byRemotePort.get(remote)?.peer;
    const pair = `${from ?? "?"}>${to ?? "?"}`;
    out.set(pair, (out.get(pair) ?? 0) + bytes);
  }
  return out;
}
