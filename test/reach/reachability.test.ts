import { describe, expect, it } from "vitest";
import type { DoctorReport } from "../../node/node-api.js";
import { eventually } from "../helpers/mesh.js";
import type { NatKind } from "../../bench/reach/netns.js";
import { PUBLIC, reachHarness } from "../helpers/reach.js";

/**
 * Reachability as members see it, behind real NAT routers: a member's dial
 * back tells R it is public (so R, configured `relay: "auto"`, starts relaying)
 * and tells A it is behind a NAT, which keeps ports (cone) or not (symmetric).
 */
const { unavailable, host, topology } = reachHarness("reachability");



async function meshBehindNat(nat: NatKind) {
  const t = topology(nat);
  const r = await host("R", t.ns.R, { ...PUBLIC, relay: "auto" });
  await r.call("createMesh", { name: "reach" });
  // No relay until a member has dialled R back.
  expect((await r.call<DoctorReport>("doctor")).relayServing).toBe(false);
  const a = await host("A", t.ns.A, { ...PUBLIC, holePunch: false });
  await a.call("join", { invite: await r.call<string>("invite") });
  return { t, r, a };
}

describe.skipIf(unavailable !== undefined)("reachability behind NATs", () => {
  it("R learns it is public and relays (relay: auto); A learns it is behind a port-keeping NAT and holds a slot on R", { timeout: 120_000 }, async () => {
    const { t, r, a } = await meshBehindNat("cone");
    await eventually(async () => (await r.call<DoctorReport>("doctor")).reachability.reachability === "public", 20_000, () => `R public; R: ${r.log().slice(-3000)}\nA: ${a.log().slice(-3000)}`);
    expect(await r.call<DoctorReport>("doctor")).toMatchObject({ relayServing: true, reachability: { translated: false, observedIp: t.addr.RA } });
    await eventually(async () => (await r.call<string[]>("reservations")).includes(a.peerId), 20_000, async () => `A's slot on R (R: ${JSON.stringify(await r.call("doctor"))})`);
    await eventually(async () => (await a.call<DoctorReport>("doctor")).reachability.reachability === "private", 20_000, "A behind a NAT");
    const doctor = await a.call<DoctorReport>("doctor");
    expect(doctor.reachability).toMatchObject({ observedIp: t.addr.NA, translated: true, portPreserving: true, by: r.peerId });
    expect(doctor.relayServing).toBe(false);
    await eventually(async () => (await a.call<DoctorReport>("doctor")).relaysReserved.includes(r.peerId), 10_000, "A's relays naming R");
    expect((await a.call<DoctorReport>("doctor")).members).toEqual([expect.objectContaining({ peerId: r.peerId, path: "direct" })]);
  });

  it("A behind a symmetric NAT learns its NAT gives each connection a new port, with a hint", { timeout: 120_000 }, async () => {
    const { a } = await meshBehindNat("symmetric");
    await eventually(async () => (await a.call<DoctorReport>("doctor")).reachability.portPreserving !== undefined, 20_000, "A's NAT port behaviour");
    const doctor = await a.call<DoctorReport>("doctor");
    expect(doctor.reachability).toMatchObject({ reachability: "private", translated: true, portPreserving: false });
    expect(doctor.hints.join("\n")).toMatch(/symmetric/);
  });
});
