import { multiaddr } from "@multiformats/multiaddr";
import { describe, expect, it } from "vitest";
import { leadsToSelf, type SelfAddresses } from "../../../node/libp2p/self-address.js";

const SELF = "12D3KooWFwDPSaJKhiUXboZsfcMwikQKmB2CPr92vzL2txNk1ikv";
const OTHER = "12D3KooWBYCiHcPTTzsHGoHvASZ1HwtjF3iv4bJgWaKNffvF2WLA";
const THIRD = "12D3KooWE7Ys1YoD1NPC4WkLhQafwWURQDjTWNQgYuaVTJnGPKm6";

/** A relay listening on 4001 on its public interface, as in the reach tests' topologies. */
const relay: SelfAddresses = {
  peerId: SELF,
  multiaddrs: () => [multiaddr(`/ip4/10.210.1.1/tcp/4001/p2p/${SELF}`), multiaddr(`/ip4/10.210.9.9/tcp/4100/p2p/${OTHER}/p2p-circuit/p2p/${SELF}`)],
  interfaceAddresses: () => new Set(["10.210.1.1", "10.210.2.1", "127.0.0.1", "::1"]),
};

describe("addresses that lead back to this node", () => {
  it.each([
    // A member's relayed address through this node: dialling it dials this node.
    [`/ip4/10.210.1.1/tcp/4001/p2p/${SELF}/p2p-circuit/p2p/${OTHER}`, true],
    [`/ip4/127.0.0.1/tcp/4001/p2p/${SELF}/p2p-circuit/p2p/${OTHER}`, true],
    // ... through another relay: a real path.
    [`/ip4/10.210.9.9/tcp/4100/p2p/${THIRD}/p2p-circuit/p2p/${OTHER}`, false],
    // A member's advertised loopback address on a port this node listens on: this node's own loopback.
    [`/ip4/127.0.0.1/tcp/4001/p2p/${OTHER}`, true],
    [`/ip4/127.0.0.2/tcp/4001/p2p/${OTHER}`, true],
    [`/ip6/::1/tcp/4001/p2p/${OTHER}`, true],
    // ... on another port: another process on this host (the in-process tests' nodes).
    [`/ip4/127.0.0.1/tcp/4002/p2p/${OTHER}`, false],
    // An address of this host's other interface on its listen port.
    [`/ip4/10.210.2.1/tcp/4001/p2p/${OTHER}`, true],
    // Another host on the same port.
    [`/ip4/10.211.1.3/tcp/4001/p2p/${OTHER}`, false],
    [`/ip4/10.210.1.2/tcp/4001`, false],
    // A port the relayed listen address names is not a port this node listens on.
    [`/ip4/127.0.0.1/tcp/4100/p2p/${OTHER}`, false],
    // Not TCP over IP.
    [`/dns4/localhost/tcp/4001/p2p/${OTHER}`, false],
    [`/ip4/127.0.0.1/udp/4001/p2p/${OTHER}`, false],
  ])("%s: %s", (address, expected) => {
    expect(leadsToSelf(multiaddr(address), relay)).toBe(expected);
  });

  it("a node with no listen address yet leads nowhere but through itself as a relay", () => {
    const starting: SelfAddresses = { peerId: SELF, multiaddrs: () => [] };
    expect(leadsToSelf(multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${OTHER}`), starting)).toBe(false);
    expect(leadsToSelf(multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${SELF}/p2p-circuit/p2p/${OTHER}`), starting)).toBe(true);
  });
});
