import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { runAdmin } from "../../node/node-admin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { hasCode } from "../../src/contract/errors.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function skillFolder(skillName: string): string {
  const tmp = tempDir("cc-skill-");
  cleanups.push(tmp.remove);
  const dir = join(tmp.path, skillName);
  mkdirSync(dir);
  writeFileSync(join(dir, "SKILL.md"), `---\nname: ${skillName}\ndescription: a skill\n---\n`);
  return dir;
}

/** Three nodes in a mesh; A publishes each registry name (version 1.0.0) as a skill of the given SKILL.md name, seen by all. */
async function meshPublishing(skills: Record<string, string>): Promise<[CoderClawNode, CoderClawNode, CoderClawNode]> {
  const started = await startNodes(3);
  cleanups.push(started.stop);
  await formMesh(started.nodes);
  const nodes = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
  for (const [name, skillName] of Object.entries(skills)) await nodes[0].registry.publishSkill(skillFolder(skillName), name, "1.0.0");
  for (const node of nodes) await eventually(() => node.registry.catalogue.list("skill").length === Object.keys(skills).length, 15_000, "the publications");
  return nodes;
}

const locked = (node: CoderClawNode): Record<string, { version: string }> => {
  try {
    return (JSON.parse(readFileSync(join(node.dataDir, "skills.lock.json"), "utf8")) as { skills: Record<string, { version: string }> }).skills;
  } catch {
    return {};
  }
};

const auditHas = async (node: CoderClawNode, action: string, pattern: RegExp): Promise<boolean> =>
  (await node.security.current.getAuditLog({ action, result: "denied" })).some((e) => pattern.test(`${e.body.resource ?? ""} ${e.body.reason ?? ""}`));

describe("the organization policy and the registry", () => {
  it("a required skill appears on every member; one that is not published is reported; a denied skill is refused at publish and at install, by name or by its SKILL.md name", async () => {
    const [a, b, c] = await meshPublishing({ "team/security-scanner": "security-scanner", "team/innocent": "shell-exec", "team/legacy": "legacy" });

    await a.security.signPolicy("team", "requiredSkills: [team/security-scanner, team/absent]\ndeniedSkills: [team/legacy, shell-exec]\n");
    for (const [node, k] of [[a, "a"], [b, "b"], [c, "c"]] as const) {
      await eventually(() => locked(node)["team/security-scanner"]?.version === "1.0.0", 20_000, `the required skill installed on ${k}`);
      expect(readFileSync(join(node.dataDir, "skills", "team.security-scanner", "SKILL.md"), "utf8")).toMatch(/name: security-scanner/);
      await eventually(() => auditHas(node, "registry.required", /team\/absent.*no skill team\/absent is published/), 10_000, `team/absent reported on ${k}`);
      expect((await node.registry.listSkills()).requiredMissing).toEqual([{ name: "team/absent", problem: expect.stringMatching(/no skill team\/absent is published/) }]);
    }

    await expect(c.registry.installSkill("team/legacy")).rejects.toThrow(/skill team\/legacy is denied by the organization policy/);
    await expect(c.registry.installSkill("team/innocent")).rejects.toThrow(/skill shell-exec is denied by the organization policy/);
    expect(await auditHas(c, "registry.install", /team\/innocent.*shell-exec is denied/)).toBe(true);
    expect(Object.keys(locked(c))).toEqual(["team/security-scanner"]);
    await expect(a.registry.publishSkill(skillFolder("shell-exec"), "team/other", "1.0.0")).rejects.toThrow(/skill shell-exec is denied/);
    expect(await auditHas(a, "registry.publish", /team\/other@1\.0\.0.*shell-exec is denied/)).toBe(true);
  }, 90_000);

  it("an installed skill that the organization denies later is removed on every member that has it, audited; the others stay", async () => {
    const [a, b, c] = await meshPublishing({ "team/scanner": "security-scanner", "team/old-linter": "old-linter", "team/formatter": "formatter" });
    for (const node of [b, c]) {
      for (const name of ["team/scanner", "team/old-linter", "team/formatter"]) await node.registry.installSkill(name);
    }
    const skillsOf = (node: CoderClawNode): string[] => readdirSync(join(node.dataDir, "skills")).filter((f) => !f.startsWith(".")).sort();
    expect(skillsOf(c)).toEqual(["team.formatter", "team.old-linter", "team.scanner"]);

    // Denied by the name in its SKILL.md (security-scanner) and by its registry name (team/old-linter).
    await a.security.signPolicy("team", "deniedSkills: [security-scanner, team/old-linter]\n");
    for (const node of [b, c]) {
      // Each removal moves the folder, then drops the lock entry, then is audited: wait for the last of them.
      // The log holds other members' replicated entries too: this node's own.
      const removals = async (): Promise<string[]> =>
        (await node.security.current.getAuditLog({ action: "registry.remove", result: "allowed" })).filter((e) => e.author === node.peerId).map((e) => `${e.body.resource ?? ""} ${e.body.reason ?? ""}`);
      await eventually(async () => (await removals()).length === 2, 15_000, "both denied skills removed and audited");
      expect(skillsOf(node)).toEqual(["team.formatter"]);
      expect(Object.keys(locked(node))).toEqual(["team/formatter"]);
      expect((await removals()).sort()).toEqual([expect.stringMatching(/^team\/old-linter@1\.0\.0 skill team\/old-linter is denied by the organization policy: removed/), expect.stringMatching(/^team\/scanner@1\.0\.0 skill security-scanner is denied by the organization policy: removed/)]);
    }
    expect((await c.registry.listSkills()).installed.map((s) => s.name)).toEqual(["team/formatter"]);
  }, 90_000);

  it("a denied skill is refused at the executor even when the submitter's node allows it", async () => {
    // Only A holds the agent that uses the skill: B's node, which does not know it, finds nothing to deny.
    const scanner: AgentExecutor = {
      info: { id: "scanner", name: "Scanner", description: "scans with the security-scanner skill", capabilities: ["scan"] },
      resumable: true,
      retryable: true,
      skills: ["security-scanner"],
      availability: () => ({ available: true }),
      execute: async (ctx) => ({ output: `scanned ${ctx.request.input}` }),
    };
    const started = await startNodes(2, (i) => (i === 0 ? { agents: [scanner] } : {}));
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b] = started.nodes as [CoderClawNode, CoderClawNode];
    await eventually(() => b.security.current.grants.rolesOf(b.peerId).has("developer") && a.security.current.grants.rolesOf(b.peerId).has("developer"), 15_000, "b's grant on both");
    const before = await b.adapter.submitTask({ description: "scan", input: "diff", agentId: "scanner" }, { route: a.peerId });
    expect(before.placement?.runsOn).toBe(a.peerId);

    const policy = "deniedSkills: [security-scanner]\n";
    await a.security.signPolicy("team", policy);
    await eventually(() => b.security.current.authorizer.isSkillDenied("security-scanner"), 15_000, "the policy in force on b");
    expect(b.security.current.checkTask(b.security.current.contextForDevice(b.peerId, "local"), { action: "task.submit", agentId: "scanner" }).allowed).toBe(true);
    const denied = await b.adapter.submitTask({ description: "scan", input: "diff", agentId: "scanner" }, { route: a.peerId }).catch((e: unknown) => e);
    expect(hasCode(denied, "PERMISSION_DENIED"), String(denied)).toBe(true);
    expect(String((denied as Error).message)).toMatch(/skill security-scanner is denied by the organization policy/);
    expect(await auditHas(a, "task.submit", /security-scanner is denied by the organization policy/)).toBe(true);
  }, 60_000);

  it("a role the policy gives registry:publish lets a member that is no admin publish; every member takes its publication", async () => {
    const started = await startNodes(3);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await a.security.signPolicy("repo", "remote:\n  allow: true\nroles:\n  publisher:\n    inherits: [developer]\n    additionalPermissions: [registry:publish]\n");
    await runAdmin(a, "roles.grant", { subject: b.peerId, roles: ["publisher"] });
    await eventually(() => b.security.current.checkPermission(b.security.current.contextForDevice(b.peerId, "remote"), "registry:publish").allowed, 15_000, "b a publisher on b");
    expect(b.security.current.grants.isAdmin(b.peerId)).toBe(false);
    const pub = await b.registry.publishSkill(skillFolder("b-tool"), "team/b-tool", "0.1.0");
    // Each member takes it as it arrives there: C may have it before A.
    for (const [node, name] of [[c, "c"], [a, "a"]] as const) {
      await eventually(() => node.registry.catalogue.list("skill").some((p) => p.id === pub.id), 15_000, `b's publication taken on ${name}`);
    }
    expect(a.registry.catalogue.list("skill").map((p) => p.id)).toEqual([pub.id]);
    expect(await c.registry.installSkill("team/b-tool")).toMatchObject({ version: "0.1.0", publisher: b.peerId });
  }, 60_000);
});
