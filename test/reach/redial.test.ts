import { describe, expect, it } from "vitest";
import { eventually } from "../helpers/mesh.js";
import type { Host } from "../../bench/reach/hosts.js";
import { PUBLIC, reachHarness } from "../helpers/reach.js";

/**
 * Members behind NATs are reached again after their network changes or is
 * cut for longer than libp2p keeps redialling: nobody outside can dial a NATed
 * member, so it has to dial out again itself, to its relay and its members.
 */
const { unavailable, host, topology } = reachHarness("redial");



/** `from` holds a connection to `to` on which a ping is answered now: a stale one (from an address gone) is not. */
async function reaches(from: Host, to: Host): Promise<boolean> {
  const conns = await from.call<Array<{ peer: string }>>("connections");
  if (!conns.some((c) => c.peer === to.peerId)) return false;
  return from.call("ping", { peer: to.peerId, count: 1 }, 10_000).then(
    () => true,
    () => false,
  );
}

describe.skipIf(unavailable !== undefined)("redialling members behind NATs", () => {
  it("reaches a member again within 30 s after its address changes, and after a 40 s cut", { timeout: 240_000 }, async () => {
    const t = topology();
    const r = await host("R", t.ns.R, { ...PUBLIC, relay: true });
    await r.call("createMesh", { name: "redial" });
    // Without hole punching, so B reaches A only through R and must find A's new relayed path itself.
    const a = await host("A", t.ns.A, { ...PUBLIC, holePunch: false });
    const b = await host("B", t.ns.B, { ...PUBLIC, holePunch: false });
    for (const joiner of [a, b]) await joiner.call("join", { invite: await r.call<string>("invite") });
    await eventually(async () => (await reaches(r, a)) && (await reaches(b, a)), 30_000, "R and B reaching A");

    // A's network changes: its address is replaced (as a laptop's is on another Wi-Fi); its old flows lead nowhere.
    t.run(t.ns.A, ["ip", "addr", "del", `${t.addr.A}/24`, "dev", "eth0"]);
    t.run(t.ns.A, ["ip", "addr", "add", "10.211.1.3/24", "dev", "eth0"]);
    t.run(t.ns.A, ["ip", "route", "add", "default", "via", "10.211.1.1"]);
    let changed = Date.now();
    await eventually(async () => (await reaches(r, a)) && (await reaches(b, a)), 30_000, "R and B reaching A at its new address");
    expect(Date.now() - changed).toBeLessThan(30_000);

    // A's router drops everything for 40 s, longer than libp2p's redials (1 + 2 + 4 + 8 + 16 s) last.
    const before = await r.call<Record<string, number>>("dials");
    t.run(t.ns.NA, ["iptables", "-w", "-I", "FORWARD", "1", "-j", "DROP"]);
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    t.run(t.ns.NA, ["iptables", "-w", "-D", "FORWARD", "1"]);
    // The relay dials A again as the library and the mesh redial, backing off, not as fast as each try fails
    // (130 a second before), and never at an address that leads back to itself: A's advertised loopback
    // address on the relay's own port, or A's relayed address through the relay.
    const during = Object.entries(await r.call<Record<string, number>>("dials"))
      .map(([addr, n]) => [addr, n - (before[addr] ?? 0)] as const)
      .filter(([, n]) => n > 0);
    expect(during.filter(([addr]) => addr.includes("/127.0.0.1/") || addr.includes(`/p2p/${r.peerId}/p2p-circuit`))).toEqual([]);
    expect(during.reduce((sum, [, n]) => sum + n, 0)).toBeLessThan(80);
    changed = Date.now();
    await eventually(async () => (await reaches(r, a)) && (await reaches(b, a)), 30_000, async () => `R and B reaching A after the cut; A: ${a.log().slice(-1500)}`);
    expect(Date.now() - changed).toBeLessThan(30_000);
  });
});
