import { describe, expect, it } from "vitest";
import { createInvite, encodeInvite, parseInvite } from "../../identity/index.js";
import { inviteAddresses } from "../../node/mesh/pairing-service.js";

const peer = "12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p";
const relay = "12D3KooWDhep9XnCF2aUZiEDGAexMpWpzP6oNnVq6bQ8p9Kj4E3d";

describe("addresses an invite carries", () => {
  it("fit the invite however many a node has: routable direct ones first, relayed ones next, loopback last", () => {
    const direct = Array.from({ length: 12 }, (_, i) => `/ip4/10.0.${i}.2/tcp/4001/p2p/${peer}`);
    const relayed = Array.from({ length: 6 }, (_, i) => `/ip4/10.9.${i}.1/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${peer}`);
    const loopback = [`/ip4/127.0.0.1/tcp/4001/p2p/${peer}`, `/ip6/::1/tcp/4001/p2p/${peer}`];
    const chosen = inviteAddresses([...loopback, ...relayed, ...direct]);
    expect(chosen).toEqual([...direct, ...relayed.slice(0, 4)]);
    const invite = createInvite({ meshId: `mesh-${"a".repeat(26)}`, inviter: peer, addrs: chosen, level: "trusted", expiresAt: Date.now() + 60_000 });
    expect(parseInvite(encodeInvite(invite)).addrs).toEqual(chosen);
    expect(inviteAddresses(loopback)).toEqual(loopback);
  });
});
