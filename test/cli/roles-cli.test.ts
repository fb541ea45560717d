import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

describe("coderclaw roles", () => {
  it("lists, grants and revokes through the running node; what would change nothing, or is not allowed, is refused with its reason (exit 2 for input, 4 for permission)", { timeout: 60_000 }, async () => {
    const home = tempDir("cc-cli-roles-");
    cleanups.push(() => home.remove());
    const node = await startCli(["start"], home.path, /control socket/);
    cleanups.push(() => node.stop());
    expect((await runCli(["mesh", "create", "--name", "roles"], home.path)).code).toBe(0);

    const granted = await runCli(["roles", "grant", "carol", "readonly", "ci"], home.path);
    expect(granted.code, granted.stderr).toBe(0);
    expect(granted.stdout).toMatch(/granted ci, readonly to carol/);
    const list = JSON.parse((await runCli(["roles", "list", "--json"], home.path)).stdout) as Array<{ subject: string; roles: string[]; founder: boolean }>;
    expect(list).toEqual(expect.arrayContaining([expect.objectContaining({ subject: "carol", roles: ["ci", "readonly"], founder: false }), expect.objectContaining({ roles: ["admin"], founder: true })]));

    const again = await runCli(["roles", "grant", "carol", "readonly"], home.path);
    expect([again.code, again.stderr]).toEqual([2, expect.stringMatching(/holds readonly already/)]);
    const revoked = await runCli(["roles", "revoke", "carol", "ci", "--reason", "done"], home.path);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/revoked ci from carol \(1 grant; its other roles granted again\)/);
    const twice = await runCli(["roles", "revoke", "carol", "ci"], home.path);
    expect([twice.code, twice.stderr]).toEqual([2, expect.stringMatching(/holds no grant of ci/)]);
    const founder = (await runCli(["roles", "list", "--json"], home.path)).stdout;
    const founderId = (JSON.parse(founder) as Array<{ subject: string; founder: boolean }>).find((r) => r.founder)!.subject;
    const self = await runCli(["roles", "revoke", founderId, "admin"], home.path);
    expect(self.code).not.toBe(0);
    expect(self.stderr).toMatch(/founded the mesh/);
    expect((await runCli(["roles", "grant", "carol", "wizard"], home.path)).stderr).toMatch(/unknown role wizard/);
  });
});
