import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PolicyFileError, buildRoleTable, loadRepoPolicy, loadTeamPolicy, parseRepoPolicy, parseTeamPolicy, permissionsOf } from "../../src/security/index.js";

describe("policy files", () => {
  it("parses a full repository policy and applies defaults", () => {
    const policy = parseRepoPolicy(`
enforceTrust: true
minimumTrustLevel: trusted
allowedRoles: [developer, admin]
roles:
  reviewer:
    inherits: [readonly]
    additionalPermissions: [task:cancel]
remote:
  allow: true
  allowedRoles: [developer]
  permissions: [task:read]
agentPolicies:
  coder:
    allowedRoles: [developer]
    requireDeviceTrust: true
skillPolicies:
  shell:
    dangerous: true
    requiredPermissions: [skill:execute]
    allowedRoles: [developer]
`);
    expect(policy).toMatchObject({ enforceTrust: true, minimumTrustLevel: "trusted", remote: { allow: true }, skillPolicies: { shell: { dangerous: true } } });
    expect(parseRepoPolicy("")).toMatchObject({ enforceTrust: false, minimumTrustLevel: "verified", roles: {}, agentPolicies: {} });
    expect(parseTeamPolicy("requiredSkills: [lint]\ndeniedSkills: [shell]\ndeniedAgents: [shell]\n")).toEqual({ enforceTrust: false, minimumTrustLevel: "verified", requiredSkills: ["lint"], deniedSkills: ["shell"], deniedAgents: ["shell"] });
  });

  it.each([
    ["an unknown key (a typo must not loosen policy)", "enforceTrust: true\nskillPolicy:\n  shell: {}\n", 2, 1, "skillPolicy"],
    ["a wrong type", "agentPolicies:\n  coder:\n    allowedRoles: developer\n", 3, 19, "agentPolicies.coder.allowedRoles"],
    ["an unknown permission", "roles:\n  r:\n    additionalPermissions:\n      - task:read\n      - task:destroy\n", 5, 9, "roles.r.additionalPermissions.1"],
    ["an unknown trust level", "minimumTrustLevel: paranoid\n", 1, 20, "minimumTrustLevel"],
    ["a nested unknown key", "skillPolicies:\n  shell:\n    dangerous: true\n    alowedRoles: [ci]\n", 4, 5, "skillPolicies.shell.alowedRoles"],
    ["broken YAML", "roles:\n  a: [unclosed\n", 3, 1, ""],
    ["a duplicate key", "enforceTrust: true\nenforceTrust: false\n", 2, 1, ""],
  ])("names file, line and key for %s", (_name, text, line, column, key) => {
    const err = (() => {
      try {
        parseRepoPolicy(text, "repo/.coderClaw/security.yaml");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(PolicyFileError);
    expect(err).toMatchObject({ code: "CONFIG", file: "repo/.coderClaw/security.yaml", line, key });
    expect((err as PolicyFileError).column).toBe(column);
    expect((err as Error).message).toMatch(new RegExp(`^repo/\\.coderClaw/security\\.yaml:${line}:${column}: `));
  });

  it("validates the organization policy the same way", () => {
    expect(() => parseTeamPolicy("deniedSkills: shell\n", "org/team-policy.yaml")).toThrow(/^org\/team-policy\.yaml:1:15: deniedSkills: /);
  });

  it("loads files from disk; a missing file is no policy, an invalid one throws", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cc-policy-"));
    try {
      expect(await loadRepoPolicy(join(dir, "missing.yaml"))).toBeUndefined();
      await writeFile(join(dir, "security.yaml"), "enforceTrust: yes please\n");
      await expect(loadRepoPolicy(join(dir, "security.yaml"))).rejects.toThrow(`${join(dir, "security.yaml")}:1:15: enforceTrust:`);
      await writeFile(join(dir, "team-policy.yaml"), "enforceTrust: true\n");
      expect(await loadTeamPolicy(join(dir, "team-policy.yaml"))).toMatchObject({ enforceTrust: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("roles", () => {
  it("gives built-in roles the upstream permission sets", () => {
    const table = buildRoleTable();
    expect(permissionsOf(table.mask("admin"))).toEqual(["admin:all"]);
    expect(permissionsOf(table.mask("developer"))).toEqual(["task:submit", "task:read", "task:cancel", "agent:invoke", "skill:execute", "config:read"]);
    expect(permissionsOf(table.mask("readonly"))).toEqual(["task:read", "config:read"]);
    expect(permissionsOf(table.mask("ci"))).toEqual(["task:submit", "task:read", "agent:invoke"]);
    expect(table.mask("no-such-role")).toBe(0);
  });

  it("resolves custom roles through inheritance chains", () => {
    const table = buildRoleTable({
      base: { additionalPermissions: ["config:write"] },
      middle: { inherits: ["base", "readonly"] },
      top: { inherits: ["middle"], additionalPermissions: ["task:cancel"] },
    });
    expect(permissionsOf(table.mask("top"))).toEqual(["task:read", "task:cancel", "config:read", "config:write"]);
  });

  it("refuses cycles, unknown parents and redefined built-ins", () => {
    expect(() => buildRoleTable({ a: { inherits: ["b"] }, b: { inherits: ["c"] }, c: { inherits: ["a"] } })).toThrow("role inheritance cycle: a -> b -> c -> a");
    expect(() => buildRoleTable({ self: { inherits: ["self"] } })).toThrow("role inheritance cycle: self -> self");
    expect(() => buildRoleTable({ a: { inherits: ["ghost"] } })).toThrow("role a: inherits unknown role ghost");
    expect(() => buildRoleTable({ readonly: { additionalPermissions: ["admin:all"] } })).toThrow("role readonly: redefines a built-in role");
  });
});
