import type { Multiaddr } from "@multiformats/multiaddr";
import { networkInterfaces } from "node:os";
import { isLoopbackHost } from "../../src/util/loopback.js";

/** What {@link leadsToSelf} knows of this node. */
export interface SelfAddresses {
  /** This node's peer id. */
  peerId: string;
  /** The addresses this node advertises (its listen addresses as others see them). */
  multiaddrs(): readonly Multiaddr[];
  /** This host's interface addresses. Default: `os.networkInterfaces()`. */
  interfaceAddresses?: () => ReadonlySet<string>;
}

/**
 * True when dialling `address` can only reach this node: a relayed address
 * through this node as the relay, or a TCP address at a port this node listens
 * on, on loopback or on one of this host's own interfaces. Members advertise
 * their loopback address and LAN addresses; one of them, dialled from the
 * relay in another network, is the relay's own (the same port on its own
 * loopback), and a relay dialling a member's relayed address through itself
 * dials itself. Each such dial fails after a full Noise handshake, or at
 * once, and libp2p tries it again at every dial of that member.
 */
export function leadsToSelf(address: Multiaddr, self: SelfAddresses): boolean {
  const components = address.getComponents();
  const circuit = components.findIndex((c) => c.name === "p2p-circuit");
  if (circuit >= 0) return components.slice(0, circuit).findLast((c) => c.name === "p2p")?.value === self.peerId;
  const host = components[0];
  const port = components[1];
  if (host === undefined || port === undefined || port.name !== "tcp" || (host.name !== "ip4" && host.name !== "ip6")) return false;
  if (!listenPorts(self.multiaddrs()).has(Number(port.value))) return false;
  const ip = host.value ?? "";
  return isLoopbackHost(ip) || (self.interfaceAddresses ?? hostAddresses)().has(ip);
}

function listenPorts(addresses: readonly Multiaddr[]): Set<number> {
  const ports = new Set<number>();
  for (const address of addresses) {
    const components = address.getComponents();
    if (components.some((c) => c.name === "p2p-circuit")) continue;
    const tcp = components.find((c) => c.name === "tcp");
    if (tcp?.value !== undefined) ports.add(Number(tcp.value));
  }
  return ports;
}

function hostAddresses(): ReadonlySet<string> {
  return new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address)
      .filter((a): a is string => a !== undefined),
  );
}
