import { describe, expect, it } from "vitest";
import { defaultDeviceName, deviceNames, generateSigner, signDeviceName } from "../../src/security/index.js";
import { meshIdFor } from "./helpers.js";

const MESH = meshIdFor("a");

describe("device names", () => {
  it("the newest name in effect wins, ties by statement id; one a non-admin gave another device names nothing", () => {
    const [laptop, admin, other] = [generateSigner(), generateSigner(), generateSigner()];
    const isAdmin = (id: string): boolean => id === admin.peerId;
    const own = signDeviceName(laptop, { device: laptop.peerId, meshId: MESH, name: "laptop", issuedAt: 100 });
    const byAdmin = signDeviceName(admin, { device: laptop.peerId, meshId: MESH, name: "work", issuedAt: 200 });
    const byOther = signDeviceName(other, { device: laptop.peerId, meshId: MESH, name: "pwned", issuedAt: 900 });
    expect(deviceNames([byOther, byAdmin, own], isAdmin).get(laptop.peerId)).toBe("work");
    expect(deviceNames([own, byOther], isAdmin).get(laptop.peerId)).toBe("laptop");
    // Once its issuer is no admin, an admin's name lapses.
    expect(deviceNames([own, byAdmin], () => false).get(laptop.peerId)).toBe("laptop");
    const a = signDeviceName(laptop, { device: laptop.peerId, meshId: MESH, name: "one", issuedAt: 300 });
    const b = signDeviceName(laptop, { device: laptop.peerId, meshId: MESH, name: "two", issuedAt: 300 });
    const tie = a.id > b.id ? "one" : "two";
    expect(deviceNames([a, b], isAdmin).get(laptop.peerId)).toBe(tie);
    expect(deviceNames([b, a], isAdmin).get(laptop.peerId)).toBe(tie);
  });

  it("defaults to the hostname's first label, with the end of the id when taken, and to nothing when it cannot be a name", () => {
    const id = generateSigner().peerId;
    expect(defaultDeviceName(id, new Set(), "build-01.example.lan")).toBe("build-01");
    expect(defaultDeviceName(id, new Set(["build-01"]), "Build-01")).toBe(`Build-01-${id.slice(-6)}`);
    expect(defaultDeviceName(id, new Set(), "my laptop")).toBe("my-laptop");
    expect(defaultDeviceName(id, new Set(), "local")).toBeUndefined();
    expect(defaultDeviceName(id, new Set(), "--")).toBeUndefined();
  });
});
