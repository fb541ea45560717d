import type { Address, Transport } from "@libp2p/interface";
import { multiaddr } from "@multiformats/multiaddr";
import { describe, expect, it } from "vitest";
import { AddressReach } from "../../../node/libp2p/address-reach.js";

const B = "12D3KooWKGZcJnSfDek2GgCsz6VxwjH8hq2Teps3dkyWKmKfkDFP";
const R = "12D3KooWKFAAxAFACR7tGFojvFfjJD8xr4X9nKmqviY9WdwyFJdC";
const lan = multiaddr(`/ip4/10.211.2.2/tcp/4001/p2p/${B}`);
const relayed = multiaddr(`/ip4/10.210.1.1/tcp/4001/p2p/${R}/p2p-circuit/p2p/${B}`);
const address = (m: ReturnType<typeof multiaddr>): Address => ({ multiaddr: m, isCertified: false });
const order = (reach: AddressReach): string[] => [address(relayed), address(lan)].sort(reach.sorter).map((a) => a.multiaddr.toString());

describe("address reach", () => {
  it("dials a LAN address that failed and was never reached after the relayed one, until it is forgotten", () => {
    let now = 0;
    const reach = new AddressReach({ forgetMs: 60_000, now: () => now });
    expect(order(reach)).toEqual([lan.toString(), relayed.toString()]);
    // Recorded as the transport saw it; sorted as the dial queue holds it (without the peer): the same address.
    reach.record(multiaddr("/ip4/10.211.2.2/tcp/4001"), false);
    expect(order(reach)).toEqual([relayed.toString(), lan.toString()]);
    now = 60_000;
    expect(order(reach)).toEqual([lan.toString(), relayed.toString()]);
  });

  it("keeps an address reached before in its place when it fails (a LAN peer that slept)", () => {
    const reach = new AddressReach();
    reach.record(lan, true);
    reach.record(lan, false);
    expect(reach.isDemoted(lan)).toBe(false);
    expect(order(reach)).toEqual([lan.toString(), relayed.toString()]);
  });

  it("records what a wrapped transport's dials did", async () => {
    const reach = new AddressReach();
    const transport = { dial: async (ma: ReturnType<typeof multiaddr>) => (ma.equals(lan) ? Promise.reject(new Error("connect ENETUNREACH")) : ({} as never)) } as unknown as Transport;
    const wrapped = reach.observe(() => transport)({});
    await expect(wrapped.dial(lan, {} as never)).rejects.toThrow("ENETUNREACH");
    await wrapped.dial(relayed, {} as never);
    expect(reach.isDemoted(lan)).toBe(true);
    expect(reach.isDemoted(relayed)).toBe(false);
  });
});
