import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveDevice, resolveIdPrefix } from "../../node/cli/id-prefix.js";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const full = (t: string): boolean => t.length === 12;

describe("resolveIdPrefix", () => {
  const ids = ["aaaa11112222", "aaaa11113333", "bbbb44445555"];
  it("takes a full id, or a unique prefix of one", () => {
    expect(resolveIdPrefix("task", "aaaa11112222", ids, full)).toBe("aaaa11112222");
    expect(resolveIdPrefix("task", "bbbb", ids, full)).toBe("bbbb44445555");
    expect(resolveIdPrefix("task", "aaaa11113", ids, full)).toBe("aaaa11113333");
    // A full id the list does not hold is the runtime's to judge.
    expect(resolveIdPrefix("task", "cccc00000000", ids, full)).toBe("cccc00000000");
  });
  it("refuses an ambiguous prefix listing the candidates, one that matches nothing, and one under 4 characters", () => {
    expect(() => resolveIdPrefix("task", "aaaa", ids, full)).toThrow(/task prefix "aaaa" is ambiguous; it matches 2:\n {2}aaaa11112222\n {2}aaaa11113333/);
    expect(() => resolveIdPrefix("task", "cccc", ids, full)).toThrow(/no task starts with "cccc"/);
    expect(() => resolveIdPrefix("task", "bbb", ids, full)).toThrow(/a prefix needs at least 4 characters/);
  });
});

describe("resolveDevice", () => {
  const devices = [{ deviceId: "aaaa11112222", name: "laptop", fingerprint: "k3xq-7mfa-b2cd-e4fg" }, { deviceId: "aaaa11113333", name: "Desk" }, { deviceId: "bbbb44445555", name: "aaaa" }, { deviceId: "cccc66667777", name: "build" }, { deviceId: "dddd88889999", name: "build" }];
  it("takes a full id, a name in any case, or a unique prefix of an id or of a fingerprint", () => {
    expect(resolveDevice("laptop", devices, full)).toBe("aaaa11112222");
    expect(resolveDevice("desk", devices, full)).toBe("aaaa11113333");
    expect(resolveDevice("bbbb", devices, full)).toBe("bbbb44445555");
    expect(resolveDevice("eeee00000000", devices, full)).toBe("eeee00000000");
    expect(resolveDevice("k3xq-7m", devices, full)).toBe("aaaa11112222");
    expect(resolveDevice("K3XQ7MFA", devices, full)).toBe("aaaa11112222");
  });
  it("refuses a name two devices share, or one that is also another's id prefix, listing the candidates; and a name nobody has", () => {
    expect(() => resolveDevice("build", devices, full)).toThrow(/device "build" is ambiguous; it names 2 devices:\n {2}cccc66667777 \(build\)\n {2}dddd88889999 \(build\)/);
    expect(() => resolveDevice("aaaa", devices, full)).toThrow(/it names 3 devices:[\s\S]*bbbb44445555 \(aaaa\)[\s\S]*aaaa11112222 \(laptop\)/);
    expect(() => resolveDevice("phone", devices, full)).toThrow(/no device of this mesh is named "phone" or has an id or fingerprint starting with it/);
    expect(() => resolveDevice("ph", devices, full)).toThrow(/an id prefix needs at least 4 characters/);
  });
});

describe("id prefixes on the command line", () => {
  let home: string;
  const cleanups: Array<() => unknown> = [];
  beforeAll(() => {
    assertBuilt();
    const d = tempDir("cc-prefix-");
    cleanups.push(() => d.remove());
    home = d.path;
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it("task show takes a unique prefix; an ambiguous one is refused with exit 2 listing both ids; a short one with exit 2", { timeout: 60_000 }, async () => {
    const one = (await runCli(["task", "submit", "-a", "echo", "one"], home)).stdout.trim();
    const two = (await runCli(["task", "submit", "-a", "echo", "two"], home)).stdout.trim();
    let common = 0;
    while (one[common] === two[common]) common++;
    expect(common).toBeGreaterThanOrEqual(4);
    const unique = one.slice(0, Math.max(common + 1, 4));
    const shown = await runCli(["task", "show", unique, "--json"], home);
    expect(shown.code).toBe(0);
    expect((JSON.parse(shown.stdout) as { id: string }).id).toBe(one);

    const ambiguous = await runCli(["task", "show", one.slice(0, common)], home);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain(one);
    expect(ambiguous.stderr).toContain(two);
    expect(await runCli(["task", "cancel", one.slice(0, 3)], home)).toMatchObject({ code: 2, stderr: expect.stringContaining("at least 4 characters") });
  });

  it("devices trust and task submit --route take a prefix of a device id", { timeout: 60_000 }, async () => {
    expect((await runCli(["mesh", "create"], home)).code).toBe(0);
    const self = (JSON.parse((await runCli(["id", "--json"], home)).stdout) as { deviceId: string }).deviceId;
    const r = await runCli(["devices", "trust", self.slice(0, 12), "--level", "verified"], home);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`device ${self} is already trusted`);
    // --route takes one too: the refusal (no node runs here to reach peers) names the full id it resolved to.
    const routed = await runCli(["task", "submit", "-a", "echo", "x", "--route", self.slice(0, 12)], home);
    expect(routed.stderr).toContain(JSON.stringify(self));
    expect(await runCli(["task", "submit", "-a", "echo", "x", "--route", "12D3KooWnothing"], home)).toMatchObject({ code: 2, stderr: expect.stringContaining('no device of this mesh is named "12D3KooWnothing" or has an id or fingerprint starting with it') });
  });
});
