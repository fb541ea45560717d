import { describe, expect, it } from "vitest";
import { gatewayFromProcRoute, PortMappingStatus } from "../../../node/libp2p/router-port-mapping.js";
import { describePortMapping } from "../../../node/cli/commands/mesh.js";

// The kernel's table as /proc/net/route prints it: addresses in little-endian hex, the default route's destination 0.
const HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";

describe("the default gateway from /proc/net/route (NAT-PMP asks it)", () => {
  it("reads the first default route's gateway, wherever it is in the table", () => {
    const table = [HEADER, "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0", "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0", "wlan0\t00000000\t010011AC\t0003\t0\t0\t600\t00000000\t0\t0\t0", ""].join("\n");
    expect(gatewayFromProcRoute(table)).toBe("192.168.1.1");
  });

  it("finds none without a default route through a gateway", () => {
    expect(gatewayFromProcRoute([HEADER, "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"].join("\n"))).toBeUndefined();
    // A default route straight onto a link (a point-to-point tunnel) has no gateway to ask.
    expect(gatewayFromProcRoute([HEADER, "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0"].join("\n"))).toBeUndefined();
    expect(gatewayFromProcRoute("")).toBeUndefined();
  });
});

describe("what doctor and status say of port mapping (test/reach/upnp.test.ts shows it against real routers)", () => {
  const key = { by: "natpmp" as const, router: "192.168.1.1", transport: "tcp" as const, internal: "192.168.1.20:4001" };

  it("searching, then no router, then a router answering; a refusal and a release are kept with the mapping", () => {
    let now = Date.parse("2026-12-05T20:00:00Z");
    const status = new PortMappingStatus(() => now);
    expect(status.report()).toEqual({ state: "searching", mappings: [] });
    status.searchEnded();
    expect(status.report().state).toBe("no-router");
    status.routerFound();
    expect(status.report().state).toBe("mapping");
    status.record(key, { error: "NotAuthorized" });
    expect(status.report()).toEqual({ state: "failed", mappings: [{ ...key, leaseSeconds: 3600, state: "failed", error: "NotAuthorized", since: "2026-12-05T20:00:00.000Z" }] });
    now += 1000;
    status.record(key, { external: "203.0.113.7:4001" });
    expect(status.report()).toEqual({ state: "mapped", mappings: [{ ...key, leaseSeconds: 3600, state: "mapped", external: "203.0.113.7:4001", since: "2026-12-05T20:00:01.000Z" }] });
    expect(describePortMapping(status.report())).toEqual(["NAT-PMP router 192.168.1.1: 203.0.113.7:4001 -> 192.168.1.20:4001 tcp, mapped since 2026-12-05T20:00:01.000Z, lease 3600 s"]);
    status.record(key, "released");
    expect(status.report().mappings).toEqual([{ ...key, leaseSeconds: 3600, state: "released", external: "203.0.113.7:4001", since: "2026-12-05T20:00:01.000Z" }]);
    expect(describePortMapping(status.report())[0]).toBe("a router answered; mapping");
  });

  it("a release of what was never mapped records nothing", () => {
    const status = new PortMappingStatus();
    status.record({ ...key, by: "upnp" }, "released");
    expect(status.report().mappings).toEqual([]);
  });
});
