import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);
const dir = tempDir("cc-policy-");
afterAll(() => dir.remove());

describe("coderclaw policy sign", () => {
  it("signs a policy file for the mesh as its admin; a file that does not parse is refused naming file, line and key", { timeout: 90_000 }, async () => {
    const home = join(dir.path, "home");
    const good = join(dir.path, "shell-for-developers.yaml");
    const bad = join(dir.path, "typo.yaml");
    writeFileSync(good, "remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\n");
    writeFileSync(bad, "remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    alowedRoles: [developer]\n");

    const noMesh = await runCli(["policy", "sign", good], home, 30_000);
    expect(noMesh.code).not.toBe(0);
    expect(noMesh.stderr).toMatch(/no mesh to sign a policy for/);

    expect((await runCli(["mesh", "create", "--name", "policies"], home, 30_000)).code).toBe(0);
    const refused = await runCli(["policy", "sign", bad], home, 30_000);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/typo\.yaml:5:\d+: .*skillPolicies\.shell-exec\.alowedRoles/);

    const signed = await runCli(["policy", "sign", good, "--json"], home, 30_000);
    expect(signed.code, signed.stderr).toBe(0);
    expect(JSON.parse(signed.stdout)).toMatchObject({ scope: "repo" });
    const audit = JSON.parse((await runCli(["audit", "query", "--action", "config.policy", "--result", "allowed", "--json"], home, 30_000)).stdout) as Array<{ body: { reason: string } }>;
    // The mesh's default policy, then this one, each put in force (again at every start of the node).
    expect(new Set(audit.map((e) => /policy (\w+) in force/.exec(e.body.reason)?.[1])).size).toBe(2);
  });
});
