import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "vitest";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";
import type { Host, HostOptions } from "../../bench/reach/hosts.js";
import { createLan, sweepStaleNamespaces } from "../../bench/reach/netns.js";
import { reachHarness } from "../helpers/reach.js";

/**
 * mDNS on a LAN: two members on one segment (network namespaces joined by a
 * veth pair) find each other by mDNS alone, and discovery leads to a dial and
 * a connection. The restarted member has a new port and no remembered
 * addresses, so nothing but mDNS can bring them together.
 */
const { unavailable, cleanups, host } = reachHarness("mDNS");


const connectedTo = async (from: Host, to: Host): Promise<boolean> => (await from.call<Array<{ peer: string }>>("connections")).some((c) => c.peer === to.peerId);

describe.skipIf(unavailable !== undefined)("mDNS on a LAN", () => {
  it("members on one LAN find each other and connect with no address given", { timeout: 90_000 }, async () => {
    sweepStaleNamespaces();
    const lan = createLan();
    cleanups.push(lan.remove);
    const LAN: HostOptions = { listen: ["/ip4/0.0.0.0/tcp/0"], sandbox: "off", mdns: true };
    const p = await host("P", lan.ns.P, LAN);
    await p.call("createMesh", { name: "lan" });
    const qHome = tempDir("cc-reach-Q-");
    cleanups.push(qHome.remove);
    const q = await host("Q", lan.ns.Q, { ...LAN, home: qHome.path });
    await q.call("join", { invite: await p.call<string>("invite") });
    await eventually(() => connectedTo(p, q), 10_000, "P and Q connected after pairing");

    // Q comes back on a new port and has forgotten where P was: P's remembered address for Q is stale too.
    await q.stop();
    rmSync(join(qHome.path, "identity", "member-addresses.json"), { force: true });
    await eventually(async () => !(await connectedTo(p, q)), 10_000, "P seeing Q gone");
    const again = await host("Q again", lan.ns.Q, { ...LAN, home: qHome.path });
    await eventually(async () => (await connectedTo(again, p)) && (await connectedTo(p, again)), 20_000, async () => `P and Q connected by mDNS; Q: ${again.log().slice(-2000)}`);
  });
});
