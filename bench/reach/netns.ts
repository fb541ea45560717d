import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPortMapper, type PortMapping } from "./port-mapper.js";

/**
 * Linux network namespaces for reachability tests: a "public" host R that also
 * routes between two home routers NA and NB, each with one host behind it (A,
 * B). Every address is inside these namespaces (10.210/16 outside the routers,
 * 10.211/16 behind them, and 11.210/16 outside too when they map ports);
 * nothing reaches the machine's own network.
 *
 * ```
 *  A 10.211.1.2 ── lan│NA│wan 10.210.1.2 ── 10.210.1.1 ┐
 *                                                      R (forwards; a member listens on both)
 *  B 10.211.2.2 ── lan│NB│wan 10.210.2.2 ── 10.210.2.1 ┘
 * ```
 *
 * The routers MASQUERADE what leaves by `wan` and silently drop what arrives
 * there unsolicited, as home routers do: a plain MASQUERADE answers a punch
 * packet with a reset or an ICMP error, and hole punching could never work.
 * They let in what a port mapping forwards, and with `portMapping` they run
 * miniupnpd, which makes such mappings when a host behind them asks.
 */

/** Namespaces of this suite start with this, then the creating process's pid, so a sweep can tell stale ones. */
export const NETNS_PREFIX = "ccreach-";

/** What NA and NB do to outgoing flows: keep the source port where they can (cone), or pick a random one each flow (symmetric). */
export type NatKind = "cone" | "symmetric";

export interface Topology {
  /** Namespace names. */
  readonly ns: { R: string; NA: string; NB: string; A: string; B: string };
  /** Addresses of the hosts: R on each side, A and B behind their routers, and the routers' outside addresses. */
  readonly addr: { RA: string; RB: string; A: string; B: string; NA: string; NB: string };
  /** With `portMapping`: the routers' public-looking outside addresses, which their port mappings forward from. */
  readonly mappedAddr?: { NA: string; NB: string };
  /**
   * With `portMapping`: the mappings router NA or NB holds, as its miniupnpd
   * lists them (see `startPortMapper`); empty before the first.
   */
  mappingLeases?(router: "NA" | "NB"): string;
  /** Run a command in a namespace to completion; throws with its stderr on failure. */
  run(ns: string, argv: string[]): string;
  /** Remove every namespace of this topology (and with them their links); safe to call twice. */
  remove(): void;
}

/** Why this machine cannot run the namespace suite, or undefined when it can. */
export function namespacesUnavailable(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (process.getuid?.() !== 0) return "creating network namespaces needs root (CI runs as root)";
  for (const tool of ["ip", "iptables"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `\`${tool}\` is missing (apt-get install -y iproute2 iptables; .ci/run does)`;
  }
  const probe = `${NETNS_PREFIX}${process.pid}-probe${randomBytes(3).toString("hex")}`;
  const added = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (added.status !== 0) return `\`ip netns add\` failed: ${added.stderr.trim()}`;
  spawnSync("ip", ["netns", "del", probe]);
  return undefined;
}

/** Remove namespaces of this suite left by a run whose process is gone (it crashed or was killed). */
export function sweepStaleNamespaces(): string[] {
  const listed = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  const stale = listed
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => {
      if (!name.startsWith(NETNS_PREFIX)) return false;
      const pid = Number(name.slice(NETNS_PREFIX.length).split("-")[0]);
      return !Number.isInteger(pid) || !isAlive(pid);
    });
  for (const name of stale) deleteNamespace(name);
  return stale;
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills what still runs in a namespace (a router's miniupnpd, a host a crashed
 * run left), then deletes it: a process inside would keep the namespace, its
 * links and its addresses alive after `ip netns del`.
 */
function deleteNamespace(name: string): void {
  const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout ?? "";
  for (const pid of pids.split("\n").map(Number).filter((p) => Number.isInteger(p) && p > 0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  spawnSync("ip", ["netns", "del", name]);
}

function sh(argv: string[]): string {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 10_000 });
  if (result.status !== 0) throw new Error(`\`${argv.join(" ")}\` failed (${result.status ?? result.signal}): ${result.stderr.trim()}`);
  return result.stdout;
}

/**
 * Namespaces named `names`, each with its loopback up, and a `run` inside any of
 * them; `remove` deletes them. On a failure while making them, what was made is
 * removed before the error is thrown.
 */
function makeNamespaces(names: readonly string[]): { run: (name: string, argv: string[]) => string; remove: () => void } {
  const made: string[] = [];
  const run = (name: string, argv: string[]): string => sh(["ip", "netns", "exec", name, ...argv]);
  const remove = (): void => {
    for (const name of made.splice(0)) deleteNamespace(name);
  };
  try {
    for (const name of names) {
      sh(["ip", "netns", "add", name]);
      made.push(name);
      run(name, ["ip", "link", "set", "lo", "up"]);
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { run, remove };
}

/** How {@link createTopology} builds its routers. */
export interface TopologyOptions {
  /** What NA and NB do to outgoing flows. Default cone. */
  nat?: NatKind;
  /**
   * NA and NB run miniupnpd for their hosts, offering UPnP IGD and NAT-PMP
   * (`upnp`) or NAT-PMP only (`natpmp`), on public-looking outside addresses
   * ({@link Topology.mappedAddr}). Default none.
   */
  portMapping?: PortMapping;
}

/**
 * Creates the topology. On any failure while building it, what was made is
 * removed before the error is thrown.
 */
export function createTopology(options: TopologyOptions = {}): Topology {
  const tag = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
  const ns = { R: `${tag}-R`, NA: `${tag}-NA`, NB: `${tag}-NB`, A: `${tag}-A`, B: `${tag}-B` };
  const addr = { RA: "10.210.1.1", RB: "10.210.2.1", NA: "10.210.1.2", NB: "10.210.2.2", A: "10.211.1.2", B: "10.211.2.2" };
  // miniupnpd maps no port on a router whose outside address is private, and libp2p's client takes such an address
  // for a double NAT; so a router that maps ports has a public-looking outside address first (the one miniupnpd
  // reports), R one beside it, and both keep the private ones the other tests use: libp2p advertises a public
  // listen address only once AutoNAT has confirmed it, so R's invites carry the private one. No address here leaves
  // these namespaces (none has a link to the machine's own network).
  const mappedAddr = options.portMapping !== undefined ? { NA: "11.210.1.2", NB: "11.210.2.2" } : undefined;
  const mappedSide = (address: string): string[] => (mappedAddr === undefined ? [] : [address.replace(/^10\./, "11.")]);
  const namespaces = makeNamespaces(Object.values(ns));
  const { run } = namespaces;
  const leaseDir = options.portMapping !== undefined ? mkdtempSync(join(tmpdir(), "cc-upnp-leases-")) : undefined;
  const leaseFile = (router: "NA" | "NB"): string => join(leaseDir!, `${router}.leases`);
  const remove = (): void => {
    namespaces.remove();
    if (leaseDir !== undefined) rmSync(leaseDir, { recursive: true, force: true });
  };
  try {
    // Each link is made with its ends already inside their namespaces, so its names never meet the machine's own.
    // Addresses in the order given: the first is what `wan`'s address is to miniupnpd.
    const link = (a: string, aIf: string, aAddrs: string[], b: string, bIf: string, bAddrs: string[]): void => {
      sh(["ip", "link", "add", aIf, "netns", a, "type", "veth", "peer", "name", bIf, "netns", b]);
      for (const aAddr of aAddrs) run(a, ["ip", "addr", "add", `${aAddr}/24`, "dev", aIf]);
      for (const bAddr of bAddrs) run(b, ["ip", "addr", "add", `${bAddr}/24`, "dev", bIf]);
      run(a, ["ip", "link", "set", aIf, "up"]);
      run(b, ["ip", "link", "set", bIf, "up"]);
    };
    link(ns.R, "toa", [addr.RA, ...mappedSide(addr.RA)], ns.NA, "wan", [...mappedSide(addr.NA), addr.NA]);
    link(ns.R, "tob", [addr.RB, ...mappedSide(addr.RB)], ns.NB, "wan", [...mappedSide(addr.NB), addr.NB]);
    link(ns.NA, "lan", ["10.211.1.1"], ns.A, "eth0", [addr.A]);
    link(ns.NB, "lan", ["10.211.2.1"], ns.B, "eth0", [addr.B]);
    run(ns.R, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    run(ns.A, ["ip", "route", "add", "default", "via", "10.211.1.1"]);
    run(ns.B, ["ip", "route", "add", "default", "via", "10.211.2.1"]);
    for (const [name, router, upstream, lan] of [
      ["NA", ns.NA, addr.RA, "10.211.1.0/24"],
      ["NB", ns.NB, addr.RB, "10.211.2.0/24"],
    ] as const) {
      run(router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      run(router, ["ip", "route", "add", "default", "via", upstream]);
      const ipt = (...rule: string[]): string => run(router, ["iptables", "-w", ...rule]);
      ipt("-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE", ...(options.nat === "symmetric" ? ["--random-fully"] : []));
      for (const chain of ["FORWARD", "INPUT"]) {
        ipt("-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
        // What a port mapping forwards (only a mapping's rule translates a destination here).
        if (chain === "FORWARD") ipt("-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT");
        ipt("-A", chain, "-i", "wan", "-j", "DROP");
      }
      if (options.portMapping !== undefined) startPortMapper(run, router, lan, options.portMapping, leaseFile(name));
    }
  } catch (err) {
    remove();
    throw err;
  }
  return {
    ns,
    addr,
    ...(mappedAddr !== undefined && { mappedAddr, mappingLeases: (router: "NA" | "NB") => (existsSync(leaseFile(router)) ? readFileSync(leaseFile(router), "utf8") : "") }),
    run,
    remove,
  };
}

/** Two hosts on one LAN segment (a veth pair, 10.212.0.0/24), with a multicast route so mDNS can go out. */
export interface Lan {
  readonly ns: { P: string; Q: string };
  readonly addr: { P: string; Q: string };
  run(ns: string, argv: string[]): string;
  remove(): void;
}

/** Creates a {@link Lan}; on failure, what was made is removed before the error is thrown. */
export function createLan(): Lan {
  const tag = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
  const ns = { P: `${tag}-P`, Q: `${tag}-Q` };
  const addr = { P: "10.212.0.2", Q: "10.212.0.3" };
  const { run, remove } = makeNamespaces(Object.values(ns));
  try {
    sh(["ip", "link", "add", "eth0", "netns", ns.P, "type", "veth", "peer", "name", "eth0", "netns", ns.Q]);
    for (const side of ["P", "Q"] as const) {
      run(ns[side], ["ip", "addr", "add", `${addr[side]}/24`, "dev", "eth0"]);
      run(ns[side], ["ip", "link", "set", "eth0", "up"]);
      run(ns[side], ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"]);
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { ns, addr, run, remove };
}
