import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startHomeNode } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";

/** `coderclaw peers` and `coderclaw ping` against two running nodes on 127.0.0.1, paired through the CLI. */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

const node = (): Promise<{ home: string; id: string }> => startHomeNode("cc-ping-", cleanups);

describe("coderclaw peers and ping", () => {
  it("show the path to a member and measure its round trip; a peer that cannot be reached is an error that says so", { timeout: 120_000 }, async () => {
    const [a, b] = [await node(), await node()];
    expect((await runCli(["mesh", "create", "--name", "ping"], a.home)).code).toBe(0);
    const invite = (await runCli(["mesh", "invite", "--level", "trusted"], a.home)).stdout.trim();
    const joined = await runCli(["mesh", "join", invite], b.home);
    expect(joined.code, joined.stderr).toBe(0);

    type Peer = { peerId: string; path: string; via?: string; since: string; latencyMs?: number };
    let peers: Peer[] = [];
    await eventually(async () => {
      peers = JSON.parse((await runCli(["peers", "--json"], a.home)).stdout) as Peer[];
      return peers.some((p) => p.peerId === b.id && p.latencyMs !== undefined);
    }, 15_000, "B among A's peers with a latency");
    const toB = peers.find((p) => p.peerId === b.id)!;
    expect(toB.path).toBe("direct");
    expect(toB.via).toBeUndefined();
    expect(Date.now() - Date.parse(toB.since)).toBeLessThan(60_000);
    const table = await runCli(["peers"], a.home);
    expect(table.stdout).toMatch(new RegExp(`${b.id}.*direct`));
    // status: one screen of this node, its mesh, its peers (with path and load) and its work.
    const status = await runCli(["status"], a.home);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^${a.id} {2}healthy, up \\d+`));
    expect(status.stdout).toMatch(/^mesh {6}ping \(mesh-[a-z2-7]+\), 2 devices, this one trusted$/m);
    expect(status.stdout).toMatch(/^tasks {5}0 active, 0 waiting, 0 in all$/m);
    expect(status.stdout).toMatch(/^listening \/ip4\/127\.0\.0\.1\/tcp\/\d+/m);
    expect(status.stdout).toMatch(new RegExp(`${b.id}.*direct`));
    expect(JSON.parse((await runCli(["status", "--json"], a.home)).stdout)).toMatchObject({ running: true, node: { deviceId: a.id, portMapping: { state: "off", mappings: [] } }, mesh: { name: "ping", devices: 2 }, peers: [{ peerId: b.id, path: "direct" }] });

    const ping = await runCli(["ping", b.id, "--count", "4", "--json"], a.home);
    expect(ping.code, ping.stderr).toBe(0);
    const report = JSON.parse(ping.stdout) as { peerId: string; path: string; addr: string; rttMs: number[] };
    expect(report).toMatchObject({ peerId: b.id, path: "direct" });
    expect(report.addr).toContain("/ip4/127.0.0.1/");
    expect(report.rttMs).toHaveLength(4);
    for (const ms of report.rttMs) expect(ms).toBeGreaterThanOrEqual(0);
    expect((await runCli(["ping", b.id, "-c", "2"], a.home)).stdout).toMatch(/direct[\s\S]*ping 2: \d+ ms[\s\S]*median/);

    // doctor: a node on loopback is reachable from this machine only (nothing to ask members), and says how to open it up.
    const doctor = await runCli(["doctor"], a.home);
    expect(doctor.code, doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/^reachability {2}this machine only \(loopback\)$/m);
    expect(doctor.stdout).toMatch(new RegExp(`listening {5}/ip4/127\\.0\\.0\\.1/tcp/\\d+`));
    expect(doctor.stdout).toMatch(new RegExp(`^  ${b.id} direct`, "m"));
    expect(doctor.stdout).toMatch(/hint: this node listens on loopback only: start it with --listen/);
    // Port mapping (test/reach/upnp.test.ts shows a real one behind a router): not asked for here.
    expect(doctor.stdout).toMatch(/^port mapping {2}off \(start with --upnp to ask the router\)$/m);
    const doctorJson = JSON.parse((await runCli(["doctor", "--json"], a.home)).stdout) as { reachability: { reachability: string }; relayServing: boolean; members: Array<{ peerId: string; path: string }> };
    expect(doctorJson).toMatchObject({ reachability: { reachability: "loopback" }, relayServing: false, portMapping: { state: "off", mappings: [] }, members: [{ peerId: b.id, path: "direct" }] });

    const unknown = "12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p";
    const refused = await runCli(["ping", unknown, "-c", "1"], a.home);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/dial|gater|reach|no answer|peer/i);
    expect((await runCli(["ping", b.id, "-c", "0"], a.home)).stderr).toMatch(/--count must be a whole number 1\.\.100/);
  });
});
