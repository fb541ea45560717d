import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../protocols/framing/index.js";
import { punchCandidateCodec } from "../../node/libp2p/hole-punch.js";

/** A member names the address this node opens a punched connection to: parsed at the edge, and never this machine. */
describe("punch candidates", () => {
  const decode = (body: unknown) => punchCandidateCodec.decode(encodeCanonical([1, body]));

  it("takes another machine's unicast IPv4 address and an unprivileged port", () => {
    expect(decode({ ip: "10.210.2.2", port: 40_001 })).toEqual({ ip: "10.210.2.2", port: 40_001 });
  });

  it("refuses loopback, unspecified, multicast and broadcast addresses, privileged ports and anything else, saying what", () => {
    for (const ip of ["127.0.0.1", "0.0.0.0", "224.0.0.1", "239.1.2.3", "255.255.255.255"]) {
      expect(() => decode({ ip, port: 40_001 }), ip).toThrow(/unicast address of another machine/);
    }
    expect(() => decode({ ip: "10.0.0.1", port: 22 })).toThrow(/port/);
    expect(() => decode({ ip: "::1", port: 40_001 })).toThrow(/ip/);
    expect(() => decode({ ip: "10.0.0.1", port: 40_001, extra: 1 })).toThrow();
  });
});
