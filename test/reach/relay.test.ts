import { describe, expect, it } from "vitest";
import { parseInvite } from "../../identity/index.js";
import { eventually } from "../helpers/mesh.js";
import { PUBLIC, reachHarness, SHELL_FOR_DEVELOPERS } from "../helpers/reach.js";

/**
 * Members behind two NATs reach each other through a relay member, in real
 * network namespaces with real routers (see netns.ts), real node processes
 * started from the built package.
 */
const { unavailable, host, topology } = reachHarness("relay");



const circuit = (addrs: readonly string[]): string[] => addrs.filter((a) => a.includes("/p2p-circuit"));

/** R (public, relaying) founds the mesh; A and B, each behind its own NAT, join with R's invite. */
async function meshBehindNats() {
  const t = topology();
  const r = await host("R", t.ns.R, { ...PUBLIC, relay: true });
  await r.call("createMesh", { name: "reach" });
  await r.call("signPolicy", { text: SHELL_FOR_DEVELOPERS });
  // Without hole punching, so the relay alone carries A and B (hole-punch.test.ts covers the upgrade to a direct path).
  const a = await host("A", t.ns.A, { ...PUBLIC, holePunch: false });
  const b = await host("B", t.ns.B, { ...PUBLIC, holePunch: false });
  for (const joiner of [a, b]) await joiner.call("join", { invite: await r.call<string>("invite") });
  return { t, r, a, b };
}

describe.skipIf(unavailable !== undefined)("relays for members behind NATs", () => {
  it("carries a 30 s shell task printing 1 MiB from A to B, both behind NATs, through the relay member", { timeout: 180_000 }, async () => {
    const { r, a, b } = await meshBehindNats();
    await eventually(async () => (await r.call<string[]>("reservations")).length === 2, 20_000, async () => `reservations of A and B on R (has ${JSON.stringify(await r.call("reservations"))})`);
    // Each NATed member now listens through R as well, and an invite it makes carries that address.
    for (const h of [a, b]) await eventually(async () => circuit(await h.call<string[]>("addrs")).length > 0, 10_000, `${h.name}'s relayed address`);
    expect(circuit(parseInvite(await a.call<string>("invite")).addrs)).not.toEqual([]);
    await eventually(async () => (await a.call<boolean>("isMember", { peer: b.peerId })) && (await b.call<boolean>("isMember", { peer: a.peerId })), 20_000, "A and B knowing each other as members");

    // 30 lines of 34,952 bytes (and a newline), one a second: 1,048,590 bytes over half a minute.
    const script = "i=0; while [ $i -lt 30 ]; do head -c 34952 /dev/zero | tr '\\0' x; echo; i=$((i+1)); sleep 1; done";
    const started = Date.now();
    const result = await a.call<{ status: string; error?: unknown; outputBytes: number; head: string; tail: string }>("run", { input: script, route: b.peerId }, 120_000);
    expect(result, `${a.log().slice(-2000)}\n${b.log().slice(-2000)}`).toMatchObject({ status: "completed", outputBytes: 30 * 34_953 });
    expect(result.tail).toBe("x".repeat(63) + "\n");
    expect(Date.now() - started).toBeGreaterThan(29_000);
    // And it went through R: the only way between A and B is the relay.
    const toB = (await a.call<Array<{ peer: string; addr: string; limited: boolean }>>("connections")).filter((c) => c.peer === b.peerId);
    expect(toB.length).toBeGreaterThan(0);
    for (const c of toB) {
      expect(c.addr).toContain(`/p2p/${r.peerId}/p2p-circuit`);
      expect(c.limited).toBe(false);
    }
    // Seeing the path: A's peer list and a ping name R as the relay.
    const peers = await a.call<Array<{ peerId: string; path: string; via?: string; latencyMs?: number }>>("peers");
    expect(peers.find((p) => p.peerId === b.peerId)).toMatchObject({ path: "relayed", via: r.peerId, latencyMs: expect.any(Number) });
    expect(peers.find((p) => p.peerId === r.peerId)).toMatchObject({ path: "direct" });
    const ping = await a.call<{ path: string; via?: string; rttMs: number[] }>("ping", { peer: b.peerId, count: 3 });
    expect(ping).toMatchObject({ path: "relayed", via: r.peerId });
    expect(ping.rttMs).toHaveLength(3);
  });

  it("gives a stranger neither a slot nor a hop, even while an invite lets it connect", { timeout: 90_000 }, async () => {
    const { t, r, a, b } = await meshBehindNats();
    await eventually(async () => (await r.call<string[]>("reservations")).length === 2, 20_000, "reservations of A and B on R");
    // An open invite lets anyone connect to R (to pair); the stranger then asks R for a slot on its own.
    await r.call("invite");
    const stranger = await host("S", t.ns.A, { listen: ["/ip4/0.0.0.0/tcp/4002"], stranger: true });
    const rAddr = (await r.call<string[]>("addrs")).find((x) => x.includes(t.addr.RA) && !x.includes("p2p-circuit"))!;
    await stranger.call("dial", { addr: rAddr });
    await expect(stranger.call("dial", { addr: `${rAddr}/p2p-circuit/p2p/${b.peerId}` })).rejects.toThrow();
    // Long enough for the stranger's reservation attempt (made as soon as identify shows R relays) to have been answered.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await r.call<string[]>("reservations")).not.toContain(stranger.peerId);
    expect(circuit(await stranger.call<string[]>("addrs"))).toEqual([]);
    expect((await r.call<string[]>("reservations")).sort()).toEqual([a.peerId, b.peerId].sort());
  });

  it("pairs a device behind one NAT with an inviter behind another, through the relay the inviter listens on", { timeout: 120_000 }, async () => {
    const { t, r, a, b } = await meshBehindNats();
    await eventually(async () => circuit(await a.call<string[]>("addrs")).length > 0, 20_000, "A's relayed address");
    // J is in B's network: A's LAN address is out of its reach, and only R could carry it to A.
    const j = await host("J", t.ns.B, { listen: ["/ip4/0.0.0.0/tcp/4003"], sandbox: "off", holePunch: false });
    await j.call("join", { invite: await a.call<string>("invite") }, 60_000);
    await eventually(async () => (await a.call<boolean>("isMember", { peer: j.peerId })) && (await r.call<boolean>("isMember", { peer: j.peerId })), 20_000, "J a member on A and R");
    const toA = (await j.call<Array<{ peer: string; addr: string }>>("connections")).filter((c) => c.peer === a.peerId);
    expect(toA.every((c) => c.addr.includes(`/p2p/${r.peerId}/p2p-circuit`))).toBe(true);

    // While A invites, R carries strangers to A only: B, which is not inviting, stays out of their reach.
    await a.call("invite");
    const stranger = await host("S", t.ns.B, { listen: ["/ip4/0.0.0.0/tcp/4004"], stranger: true });
    const rAddr = (await r.call<string[]>("addrs")).find((x) => x.includes(t.addr.RB) && !x.includes("p2p-circuit"))!;
    await stranger.call("dial", { addr: rAddr });
    await expect(stranger.call("dial", { addr: `${rAddr}/p2p-circuit/p2p/${b.peerId}` })).rejects.toThrow();
  });
});
