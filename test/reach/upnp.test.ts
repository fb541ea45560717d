import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { portMapperUnavailable, type PortMapping } from "../../bench/reach/port-mapper.js";
import type { DoctorReport } from "../../node/node-api.js";
import { eventually } from "../helpers/mesh.js";
import { PUBLIC, reachHarness, SHELL_FOR_DEVELOPERS } from "../helpers/reach.js";

/**
 * Port mapping by a home router: A, behind a cone NAT router running
 * miniupnpd (UPnP IGD and NAT-PMP, or NAT-PMP only), asks it to forward its
 * listen port and advertises the router's address with the mapped port, where
 * a member outside dials it directly.
 */
const { unavailable: noNamespaces, host, topology } = reachHarness("upnp");
const unavailable = noNamespaces ?? portMapperUnavailable();
if (noNamespaces === undefined && unavailable !== undefined) console.warn(`skipping the upnp suite: ${unavailable}`);

const STOP_CHILD = fileURLToPath(new URL("../fixtures/upnp-stop-child.mjs", import.meta.url));

type Connection = { peer: string; addr: string; direction: string; limited: boolean };

/**
 * F (public) founds the mesh; R, outside too, listens on loopback only, so no
 * one can dial it and any connection between R and A is one R dialled; A,
 * behind NA, joins. No relay and no hole punching: the only way from R to A
 * is a port the router forwards.
 */
async function meshBehindMappingRouter(upnp: boolean, portMapping: PortMapping = "upnp") {
  const t = topology("cone", { portMapping });
  const f = await host("F", t.ns.R, PUBLIC);
  await f.call("createMesh", { name: "upnp" });
  await f.call("signPolicy", { text: SHELL_FOR_DEVELOPERS });
  const r = await host("R", t.ns.R, { listen: ["/ip4/127.0.0.1/tcp/4002"], sandbox: "off" });
  const a = await host("A", t.ns.A, { ...PUBLIC, upnp, reserveRelay: false, holePunch: false });
  for (const joiner of [r, a]) await joiner.call("join", { invite: await f.call<string>("invite") });
  await eventually(async () => await r.call<boolean>("isMember", { peer: a.peerId }), 20_000, "R knowing A as a member");
  return { t, r, a };
}

describe.skipIf(unavailable !== undefined)("UPnP port mapping behind a home router", () => {
  it.each<PortMapping>(["upnp", "natpmp"])("A (upnp on) behind a router speaking %s advertises the router's address with a mapped port; R dials it directly and routes a task over it", { timeout: 120_000 }, async (portMapping) => {
    const { t, r, a } = await meshBehindMappingRouter(true, portMapping);
    const onRouter = new RegExp(`^/ip4/${t.mappedAddr!.NA.replaceAll(".", "\\.")}/tcp/(\\d+)/p2p/${a.peerId}$`);
    let mapped: string | undefined;
    await eventually(async () => (mapped = (await a.call<string[]>("addrs")).find((addr) => onRouter.test(addr))) !== undefined, 30_000, async () => `A's mapped address (A has ${JSON.stringify(await a.call("addrs"))}); A: ${a.log().slice(-2000)}`);
    // doctor (and status) show the mapping: who made it, where it forwards from and to, its lease.
    const externalPort = onRouter.exec(mapped!)![1];
    expect((await a.call<DoctorReport>("doctor")).portMapping).toEqual({
      state: "mapped",
      mappings: [{ by: portMapping, router: "10.211.1.1", transport: "tcp", internal: `${t.addr.A}:4001`, external: `${t.mappedAddr!.NA}:${externalPort}`, leaseSeconds: 3600, state: "mapped", since: expect.any(String) }],
    });
    // And that is the lease the router holds: it ends an hour from now (NAT-PMP's field is in seconds).
    const lease = t.mappingLeases!("NA").split("\n").map((line) => line.split(":")).find(([proto, port]) => proto === "TCP" && port === externalPort);
    expect(lease, t.mappingLeases!("NA")).toBeDefined();
    expect(Number(lease![4]) - Date.now() / 1000).toBeGreaterThan(3500);
    expect(Number(lease![4]) - Date.now() / 1000).toBeLessThanOrEqual(3601);

    // This dial does not join one already under way to A (a redial, a discovery) that tries addresses NA drops first (bench/reach/dial-address.ts).
    await r.call("dial", { addr: mapped });
    const toA = (await r.call<Connection[]>("connections")).filter((c) => c.peer === a.peerId);
    expect(toA).toEqual([{ peer: a.peerId, addr: mapped, direction: "outbound", limited: false }]);

    const result = await r.call<{ status: string; outputBytes: number; head: string }>("run", { input: "echo mapped", route: a.peerId }, 60_000);
    expect(result, `${r.log().slice(-2000)}\n${a.log().slice(-2000)}`).toMatchObject({ status: "completed", head: "mapped\n" });
    // It went over that connection: the only one between R and A.
    expect((await r.call<Connection[]>("connections")).filter((c) => c.peer === a.peerId)).toEqual(toA);
  });

  it("without upnp A advertises no address on the router, and the same dial finds nothing there", { timeout: 120_000 }, async () => {
    const { t, r, a } = await meshBehindMappingRouter(false);
    expect((await a.call<DoctorReport>("doctor")).portMapping).toEqual({ state: "off", mappings: [] });
    expect((await a.call<string[]>("addrs")).filter((addr) => addr.includes(t.mappedAddr!.NA))).toEqual([]);
    await expect(r.call("dial", { addr: `/ip4/${t.mappedAddr!.NA}/tcp/4001/p2p/${a.peerId}` })).rejects.toThrow();
    expect((await r.call<Connection[]>("connections")).filter((c) => c.peer === a.peerId)).toEqual([]);
  });

  it("behind a router that maps nothing, A with upnp on says so in doctor, with a hint", { timeout: 60_000 }, async () => {
    const t = topology("cone");
    const a = await host("A", t.ns.A, { ...PUBLIC, upnp: true, reserveRelay: false, holePunch: false });
    let report: DoctorReport | undefined;
    // The first search: SSDP for 5 s, NAT-PMP asked of the default gateway meanwhile (3 s).
    await eventually(async () => (report = await a.call<DoctorReport>("doctor")).portMapping.state === "no-router", 20_000, async () => `doctor's port mapping (${JSON.stringify(report?.portMapping)})`);
    expect(report!.portMapping.mappings).toEqual([]);
    expect(report!.hints).toContainEqual(expect.stringContaining("no router answered UPnP or NAT-PMP"));
  });

  it("a node stopped while it looks for a NAT-PMP router leaves nothing open: its process ends by itself", { timeout: 60_000 }, async () => {
    const t = topology("cone", { portMapping: "natpmp" });
    const home = mkdtempSync(join(tmpdir(), "cc-upnp-stop-"));
    // The first search for a UPnP router lasts 5 s; stopping at 1 s ends it while the NAT-PMP answer is in hand.
    const child = spawn("ip", ["netns", "exec", t.ns.A, process.execPath, STOP_CHILD, home, "1000"], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exit = await new Promise<number | string | null>((resolve) => {
      const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.once("exit", (code, signal) => (clearTimeout(killer), resolve(code ?? signal)));
    });
    rmSync(home, { recursive: true, force: true });
    expect(output).toContain("stopped");
    expect(exit, output).toBe(0);
  });
});
