import { spawn, spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { createTopology, namespacesUnavailable, sweepStaleNamespaces, NETNS_PREFIX, type Topology } from "../../bench/reach/netns.js";

const unavailable = namespacesUnavailable();
if (unavailable !== undefined) console.warn(`skipping the network namespace suite: ${unavailable}`);

/** A TCP server in a namespace that answers each connection with the address and port it came from. */
function echoSource(topology: Topology, ns: string, port: number): Promise<() => void> {
  const code = `require("node:net").createServer((s) => s.end(s.remoteAddress + " " + s.remotePort)).listen(${port}, "0.0.0.0", () => console.log("up"))`;
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout.once("data", () => resolve(() => child.kill("SIGKILL")));
    child.once("exit", (code) => reject(new Error(`server in ${ns} exited with ${code}`)));
  });
}

/** Connects from a namespace (from `localPort` if given); prints what the server said, or the error code (a timeout is "TIMEOUT"). */
function connectFrom(ns: string, host: string, port: number, localPort?: number): string {
  const code = `const s = require("node:net").connect({ port: ${port}, host: "${host}"${localPort === undefined ? "" : `, localPort: ${localPort}`} }); let d = ""; s.setTimeout(1500, () => { console.log("TIMEOUT"); process.exit(0); });
    s.on("data", (b) => (d += b)); s.on("end", () => console.log(d)); s.on("error", (e) => console.log(e.code));`;
  return spawnSync("ip", ["netns", "exec", ns, process.execPath, "-e", code], { encoding: "utf8", timeout: 10_000 }).stdout.trim();
}

const netnsNames = (): string[] => spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").map((l) => l.split(" ")[0] ?? "");

describe.skipIf(unavailable !== undefined)("network namespace topology", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c();
  });

  it("puts A and B behind routers that translate their outgoing flows and silently drop unsolicited inbound", async () => {
    const t = createTopology();
    cleanups.push(t.remove);
    cleanups.push(await echoSource(t, t.ns.R, 7000));
    cleanups.push(await echoSource(t, t.ns.A, 7001));
    // Out through the router: R sees NA's outside address, not A's.
    expect(connectFrom(t.ns.A, t.addr.RA, 7000)).toMatch(new RegExp(`^${t.addr.NA} \\d+$`));
    expect(connectFrom(t.ns.B, t.addr.RA, 7000)).toMatch(new RegExp(`^${t.addr.NB} \\d+$`));
    // Cone: a flow keeps its source port through the router, so a peer can predict it.
    expect(connectFrom(t.ns.A, t.addr.RA, 7000, 40_001)).toBe(`${t.addr.NA} 40001`);
    // In, unsolicited: no reset, no ICMP error, just silence; and A's own address is not routed from outside.
    expect(connectFrom(t.ns.R, t.addr.NA, 7001)).toBe("TIMEOUT");
    expect(connectFrom(t.ns.B, t.addr.NA, 7001)).toBe("TIMEOUT");
    expect(["TIMEOUT", "ENETUNREACH", "EHOSTUNREACH"]).toContain(connectFrom(t.ns.R, t.addr.A, 7001));
  });

  it("gives each flow a random outside port behind a symmetric NAT", async () => {
    const t = createTopology({ nat: "symmetric" });
    cleanups.push(t.remove);
    cleanups.push(await echoSource(t, t.ns.R, 7000));
    const ports = new Set([40_001, 40_002, 40_003].map((p) => connectFrom(t.ns.A, t.addr.RA, 7000, p)));
    expect(ports.size).toBe(3);
    expect([...ports].every((seen) => seen.startsWith(`${t.addr.NA} `) && !/ 4000[123]$/.test(seen))).toBe(true);
  });

  it("removes every namespace it made, and sweeps those of a run that died", () => {
    const t = createTopology({ nat: "symmetric" });
    const names = Object.values(t.ns);
    expect(netnsNames()).toEqual(expect.arrayContaining(names));
    t.remove();
    t.remove();
    expect(netnsNames().filter((n) => names.includes(n))).toEqual([]);
    // A namespace of a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max) is stale.
    const stale = `${NETNS_PREFIX}4194305-dead00-R`;
    spawnSync("ip", ["netns", "add", stale]);
    expect(sweepStaleNamespaces()).toContain(stale);
    expect(netnsNames()).not.toContain(stale);
  });
});
