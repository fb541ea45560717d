import { describe, expect, it } from "vitest";
import { gatewayFromProcRoute } from "../../../node/libp2p/router-port-mapping.js";

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
