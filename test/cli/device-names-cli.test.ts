import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startHomeNode } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";

/** Device names on two running nodes on 127.0.0.1, paired through the CLI. */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

const node = (startArgs: string[] = []): Promise<{ home: string; id: string; output: string }> => startHomeNode("cc-names-", cleanups, startArgs);

type Device = { deviceId: string; name?: string; fingerprint: string; revoked: boolean };
const devicesOn = async (home: string): Promise<Device[]> => JSON.parse((await runCli(["devices", "list", "--json"], home)).stdout) as Device[];

describe("device names on the command line", () => {
  it("a name or fingerprint prefix is usable wherever a device id is (ping, --route, devices revoke); ambiguous and unknown ones are refused; a member cannot rename another", { timeout: 120_000 }, async () => {
    const [a, b] = [await node(["--http", "127.0.0.1:0"]), await node()];
    expect((await runCli(["mesh", "create", "--name", "names"], a.home)).code).toBe(0);
    const invite = (await runCli(["mesh", "invite", "--level", "trusted"], a.home)).stdout.trim();
    expect((await runCli(["mesh", "join", invite], b.home)).code).toBe(0);

    // Named by default, then b renames itself by a prefix of its id; a sees it.
    await eventually(async () => (await devicesOn(a.home)).find((d) => d.deviceId === b.id)?.name !== undefined, 15_000, "b's default name on a");
    const renamed = await runCli(["devices", "rename", b.id.slice(0, 20), "laptop"], b.home);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout).toMatch(new RegExp(`^${b.id} is now laptop \\(was .+\\)$`, "m"));
    await eventually(async () => (await devicesOn(a.home)).find((d) => d.deviceId === b.id)?.name === "laptop", 15_000, "laptop on a");
    expect((await runCli(["devices", "list"], a.home)).stdout).toMatch(new RegExp(`${b.id}[ │]+laptop[ │]+trusted`));
    expect((await runCli(["status"], a.home)).stdout).toMatch(new RegExp(`${b.id}[ │]+laptop[ │]+direct`));
    await eventually(async () => (JSON.parse((await runCli(["peers", "--json"], a.home)).stdout) as Array<{ peerId: string; name?: string }>).some((p) => p.peerId === b.id && p.name === "laptop"), 15_000, "laptop among a's peers");

    const ping = await runCli(["ping", "laptop", "-c", "1", "--json"], a.home);
    expect(ping.code, ping.stderr).toBe(0);
    expect(JSON.parse(ping.stdout)).toMatchObject({ peerId: b.id });
    // The fingerprint people compare by eye works too, as a prefix.
    const fingerprint = (await devicesOn(a.home)).find((d) => d.deviceId === b.id)!.fingerprint;
    expect(JSON.parse((await runCli(["ping", fingerprint.slice(0, 9), "-c", "1", "--json"], a.home)).stdout)).toMatchObject({ peerId: b.id });
    const routed = await runCli(["task", "submit", "named", "-a", "echo", "--route", "LAPTOP", "--wait", "--json"], a.home, 60_000);
    expect(routed.code, routed.stderr).toBe(0);
    expect(routed.stdout).toContain(b.id);
    // Over --server, among the server's devices.
    const url = /http (http:\/\/\S+)/.exec(a.output)![1]!;
    const token = (await runCli(["session", "create"], a.home)).stdout.trim();
    const elsewhere = await runCli(["task", "submit", "remote", "-a", "echo", "--route", "laptop", "--wait", "--json", "--server", url, "--token", token], b.home, 60_000);
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(elsewhere.stdout).toContain(b.id);

    // Every Ed25519 device id starts with 12D3KooW: a prefix that names both is refused listing them; a name nobody has is refused as such.
    const ambiguous = await runCli(["ping", "12D3KooW"], a.home);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(/device "12D3KooW" is ambiguous; it names 2 devices/);
    expect(ambiguous.stderr).toContain(`${b.id} (laptop)`);
    expect(ambiguous.stderr).toContain(a.id);
    const unknown = await runCli(["devices", "revoke", "phone"], a.home);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringMatching(/no device of this mesh is named "phone"/)]);

    // b is no admin: renaming a is refused with the reason and the command an admin would run.
    const notMine = await runCli(["devices", "rename", a.id, "pwned"], b.home);
    expect(notMine.code).toBe(3);
    expect(notMine.stderr).toMatch(new RegExp(`only device ${a.id} itself or an admin may rename it`));

    const revoked = await runCli(["devices", "revoke", "laptop", "--reason", "lost"], a.home);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await devicesOn(a.home)).find((d) => d.deviceId === b.id)).toMatchObject({ name: "laptop", revoked: true });
  });
});
