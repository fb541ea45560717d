import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { pmpNat, upnpNat, type FindGatewaysOptions, type Gateway, type UPnPNAT } from "@achingbrain/nat-port-mapper";

/** How long the router has to answer a NAT-PMP request for its external address before it is taken not to speak NAT-PMP. */
const NAT_PMP_PROBE_MS = 3000;

/** How long a mapping is asked for; the mapper asks again a minute before it ends (the library's defaults, stated here so they can be shown). */
const LEASE_MS = 3_600_000;

/** One port the router was asked to forward, as `doctor` shows it. */
export interface PortMappingEntry {
  /** How the router was asked. */
  by: "upnp" | "natpmp";
  /** The router's address on this side. */
  router: string;
  transport: "tcp" | "udp";
  /** This node's `host:port` the router forwards to. */
  internal: string;
  /** The router's `host:port` members outside dial; absent until mapped. */
  external?: string;
  /** The lease the router was asked for, seconds; the mapper renews the mapping hourly while the node runs. */
  leaseSeconds: number;
  /** `mapped`, `failed` (the router refused; see `error`) or `released` (the node let it go). */
  state: "mapped" | "failed" | "released";
  error?: string;
  /** When the state last changed (ISO 8601). */
  since: string;
}

/** What port mapping did on this node: off, still looking for a router, or the mappings asked for. */
export interface PortMappingReport {
  /**
   * `off` (not asked for), `searching` (the first search for a router is under way), `no-router`
   * (a search ended with no router answering UPnP or NAT-PMP; searches go on), `mapping` (a router
   * answered, nothing mapped yet), `mapped` (at least one port forwarded),
   * `failed` (every mapping asked for was refused).
   */
  state: "off" | "searching" | "no-router" | "mapping" | "mapped" | "failed";
  mappings: PortMappingEntry[];
}

/**
 * Keeps what the port mapping client saw (searches, routers, each mapping and
 * its outcome) for `doctor` and `status`; libp2p's UPnP service keeps its own
 * state private.
 */
export class PortMappingStatus {
  #searched = false;
  #routers = 0;
  readonly #mappings = new Map<string, PortMappingEntry>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  report(): PortMappingReport {
    const mappings = [...this.#mappings.values()].map((m) => ({ ...m }));
    const state = mappings.some((m) => m.state === "mapped")
      ? "mapped"
      : mappings.length > 0 && mappings.every((m) => m.state === "failed")
        ? "failed"
        : this.#routers > 0
          ? "mapping"
          : this.#searched
            ? "no-router"
            : "searching";
    return { state, mappings };
  }

  /** @internal A search for routers ended (the library searches again every few seconds until one answers). */
  searchEnded(): void {
    this.#searched = true;
  }

  /** @internal A router answered and was handed to the mapper. */
  routerFound(): void {
    this.#routers++;
  }

  /** @internal The outcome of asking `router` (by `by`) to forward `internal`. */
  record(key: { by: PortMappingEntry["by"]; router: string; transport: PortMappingEntry["transport"]; internal: string }, outcome: { external: string } | { error: string } | "released"): void {
    const id = `${key.by} ${key.router} ${key.transport} ${key.internal}`;
    const before = this.#mappings.get(id);
    if (outcome === "released" && before === undefined) return;
    const entry: PortMappingEntry = {
      ...key,
      // Both kinds ask for the same lease: for NAT-PMP, with patches/@achingbrain+nat-port-mapper+4.0.5.patch.
      leaseSeconds: LEASE_MS / 1000,
      since: new Date(this.#now()).toISOString(),
      ...(outcome === "released" ? { state: "released", ...(before?.external !== undefined && { external: before.external }) } : "external" in outcome ? { state: "mapped", external: outcome.external } : { state: "failed", error: outcome.error }),
    };
    this.#mappings.set(id, entry);
  }
}

/** Options of {@link routerPortMappingClient}. */
export interface RouterPortMappingOptions {
  /** What the router's mapping table shows as the mapping's owner. */
  description: string;
  /** Where searches, routers and mappings are recorded for `doctor`. */
  status?: PortMappingStatus;
}

/**
 * A gateway finder for libp2p's UPnP service that also speaks NAT-PMP: it
 * yields the UPnP IGD gateways an SSDP search finds and, when a search finds
 * none, the default gateway if it answers NAT-PMP (routers that offer only
 * NAT-PMP, as Apple's and some others do). A router offering both is asked by
 * UPnP only, so a port is not mapped twice.
 */
export function routerPortMappingClient(options: RouterPortMappingOptions): UPnPNAT {
  const status = options.status ?? new PortMappingStatus();
  const upnp = upnpNat({ description: options.description, ttl: LEASE_MS });
  // Once yielded, the NAT-PMP gateway belongs to libp2p's port mapper (which stops it); it is offered once,
  // and not looked for again behind a router that answered UPnP.
  let pmpOffered = false;
  let upnpFound = false;
  return {
    getGateway: async (descriptor, opts) => observed(await upnp.getGateway(descriptor, opts), "upnp", status),
    async *findGateways(opts?: FindGatewaysOptions) {
      try {
        const pmp = pmpOffered || upnpFound ? undefined : probeNatPmp(options.description);
        for await (const gateway of upnp.findGateways(opts)) {
          upnpFound = true;
          status.routerFound();
          yield observed(gateway, "upnp", status);
        }
        const answered = await pmp;
        if (answered === undefined) return;
        // A search ends when its time is up (a timeout); any other abort is libp2p stopping, and a gateway yielded
        // then would be adopted by no port mapper and its socket would keep the process alive.
        const stopped = opts?.signal?.aborted === true && (opts.signal.reason as Error | undefined)?.name !== "TimeoutError";
        if (upnpFound || stopped) {
          await answered.stop();
          return;
        }
        pmpOffered = true;
        status.routerFound();
        yield observed(answered, "natpmp", status);
      } finally {
        status.searchEnded();
      }
    },
  };
}

/** `gateway`, with each mapping it makes, refuses or lets go recorded in `status`. */
function observed(gateway: Gateway, by: PortMappingEntry["by"], status: PortMappingStatus): Gateway {
  const mapped = new Map<number, Parameters<PortMappingStatus["record"]>[0]>();
  const release = (): void => {
    for (const key of mapped.values()) status.record(key, "released");
    mapped.clear();
  };
  return {
    id: gateway.id,
    host: gateway.host,
    port: gateway.port,
    family: gateway.family,
    mapAll: (internalPort, opts) => gateway.mapAll(internalPort, opts),
    externalIp: (opts) => gateway.externalIp(opts),
    async map(internalPort, internalHost, opts) {
      const key = { by, router: gateway.host, transport: (opts?.protocol ?? "tcp").toLowerCase() as PortMappingEntry["transport"], internal: `${internalHost}:${internalPort}` };
      try {
        const mapping = await gateway.map(internalPort, internalHost, opts);
        mapped.set(internalPort, key);
        status.record(key, { external: `${mapping.externalHost}:${mapping.externalPort}` });
        return mapping;
      } catch (err) {
        status.record(key, { error: (err as Error).message });
        throw err;
      }
    },
    async unmap(internalPort, opts) {
      await gateway.unmap(internalPort, opts);
      const key = mapped.get(internalPort);
      mapped.delete(internalPort);
      if (key !== undefined) status.record(key, "released");
    },
    async stop(opts) {
      await gateway.stop(opts);
      release();
    },
  };
}

/** The default gateway as a NAT-PMP gateway if it answers in time; otherwise undefined (its socket closed). */
async function probeNatPmp(description: string): Promise<Gateway | undefined> {
  const address = await defaultGatewayIPv4().catch(() => undefined);
  if (address === undefined) return undefined;
  const gateway = pmpNat(address, { description, ttl: LEASE_MS });
  try {
    await gateway.externalIp({ signal: AbortSignal.timeout(NAT_PMP_PROBE_MS) });
    return gateway;
  } catch {
    await gateway.stop().catch(() => undefined);
    return undefined;
  }
}

/**
 * The IPv4 default gateway: from the kernel's routing table on Linux
 * (`/proc/net/route`, addresses in little-endian hex), from `route` on macOS
 * and the BSDs; undefined elsewhere or when there is no default route.
 */
export async function defaultGatewayIPv4(): Promise<string | undefined> {
  if (process.platform === "linux") return gatewayFromProcRoute(await readFile("/proc/net/route", "utf8"));
  if (process.platform === "darwin" || process.platform.endsWith("bsd")) {
    const { stdout } = await promisify(execFile)("route", ["-n", "get", "default"], { timeout: 2000 });
    return /gateway:\s*(\d+\.\d+\.\d+\.\d+)/.exec(stdout)?.[1];
  }
  return undefined;
}

/** The gateway of the first default route in the text of `/proc/net/route`. */
export function gatewayFromProcRoute(table: string): string | undefined {
  for (const line of table.split("\n").slice(1)) {
    const [, destination, gateway] = line.trim().split(/\s+/);
    if (destination !== "00000000" || gateway === undefined || !/^[0-9A-Fa-f]{8}$/.test(gateway) || gateway === "00000000") continue;
    const n = Number.parseInt(gateway, 16);
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join(".");
  }
  return undefined;
}
