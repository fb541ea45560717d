import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { pmpNat, upnpNat, type FindGatewaysOptions, type Gateway, type UPnPNAT } from "@achingbrain/nat-port-mapper";

/** How long the router has to answer a NAT-PMP request for its external address before it is taken not to speak NAT-PMP. */
const NAT_PMP_PROBE_MS = 3000;

/** Options of {@link routerPortMappingClient}. */
export interface RouterPortMappingOptions {
  /** What the router's mapping table shows as the mapping's owner. */
  description: string;
}

/**
 * A gateway finder for libp2p's UPnP service that also speaks NAT-PMP: it
 * yields the UPnP IGD gateways an SSDP search finds and, when a search finds
 * none, the default gateway if it answers NAT-PMP (routers that offer only
 * NAT-PMP, as Apple's and some others do). A router offering both is asked by
 * UPnP only, so a port is not mapped twice.
 */
export function routerPortMappingClient(options: RouterPortMappingOptions): UPnPNAT {
  const upnp = upnpNat({ description: options.description });
  // Once yielded, the NAT-PMP gateway belongs to libp2p's port mapper (which stops it); it is offered once,
  // and not looked for again behind a router that answered UPnP.
  let pmpOffered = false;
  let upnpFound = false;
  return {
    getGateway: (descriptor, opts) => upnp.getGateway(descriptor, opts),
    async *findGateways(opts?: FindGatewaysOptions) {
      const pmp = pmpOffered || upnpFound ? undefined : probeNatPmp(options.description);
      for await (const gateway of upnp.findGateways(opts)) {
        upnpFound = true;
        yield gateway;
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
      yield answered;
    },
  };
}

/** The default gateway as a NAT-PMP gateway if it answers in time; otherwise undefined (its socket closed). */
async function probeNatPmp(description: string): Promise<Gateway | undefined> {
  const address = await defaultGatewayIPv4().catch(() => undefined);
  if (address === undefined) return undefined;
  const gateway = pmpNat(address, { description });
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
