import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agentSkills } from "../../src/agents/agent-skills.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createCommandAgent } from "../../src/agents/command-agent.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { parseAgentsConfig } from "../../src/config/agents-config.js";
import { AuditLog, generateSigner, parseRepoPolicy, SecurityService, signRoleGrant, type SecurityContext } from "../../src/security/index.js";
import { meshIdFor, tempLevel } from "./helpers.js";

const MESH = meshIdFor("t");

/** A coding agent that runs commands, declaring so in its configuration. */
const coder = createCommandAgent(
  parseAgentsConfig(
    ["agents:", "  - id: coder", "    name: Coder", "    description: d", "    capabilities: [code-creation]", "    skills: [shell-exec]", "    command: [coder, '{input}']", "    input: arg"].join("\n"),
    { path: "runtime.yaml", kind: "runtime" },
  ).agents[0]!,
);

const registry = createBuiltinRegistry([createShellAgent(), coder]);

describe("SecurityService.authorizeTask: the skills a task uses come from its agent", () => {
  const owner = generateSigner();
  const node = generateSigner();
  let level: Awaited<ReturnType<typeof tempLevel>>;
  let service: SecurityService;
  const ctx = (userId: string, roles: string[]): SecurityContext => ({ userId, roles, deviceId: node.peerId, deviceTrustLevel: "verified", origin: "http", meshId: MESH });

  beforeEach(async () => {
    level = await tempLevel();
    service = new SecurityService({
      meshId: MESH,
      signer: node,
      audit: new AuditLog({ db: level.db, signer: node }),
      rootAdmins: [owner.peerId],
      agentSkills: agentSkills(registry),
    });
    for (const [subject, roles] of [["dev", ["developer"]], ["bot", ["ci"]]] as const) {
      await service.addRoleGrant(signRoleGrant(owner, { subject, roles: [...roles], meshId: MESH }));
    }
  });
  afterEach(async () => {
    await service.audit.close();
    await level.dispose();
  });

  it("with no policy file, shell-exec is dangerous: only an admin runs shell or an agent that declares it", async () => {
    const submit = (c: SecurityContext, agentId: string) => service.authorizeTask(c, { action: "task.submit", agentId });
    expect(agentSkills(registry)("coder")).toEqual(["shell-exec"]);
    expect(await submit(ctx("dev", ["developer"]), "echo")).toMatchObject({ allowed: true });
    expect(await submit(ctx("dev", ["developer"]), "shell")).toEqual({ allowed: false, reason: "skill shell-exec is dangerous and no role is allowed to run it" });
    expect(await submit(ctx("dev", ["developer"]), "coder")).toEqual({ allowed: false, reason: "skill shell-exec is dangerous and no role is allowed to run it" });
    expect(await submit(ctx("bot", ["ci"]), "shell")).toEqual({ allowed: false, reason: "no role of bot grants skill:execute; developer would (an admin grants one: coderclaw roles grant bot developer)" });
    expect(await submit(ctx(owner.peerId, ["admin"]), "shell")).toMatchObject({ allowed: true });
    expect(await submit({ ...ctx(owner.peerId, ["admin"]), deviceTrustLevel: "untrusted" }, "coder")).toMatchObject({ allowed: false, reason: expect.stringMatching(/dangerous and device .* is untrusted/) });

    // A policy that lists developer for shell-exec lets developers in, for every agent that uses it.
    service.setPolicies(parseRepoPolicy("skillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\n"), undefined);
    expect(await submit(ctx("dev", ["developer"]), "shell")).toMatchObject({ allowed: true });
    expect(await submit(ctx("dev", ["developer"]), "coder")).toMatchObject({ allowed: true });

    const audited = await service.getAuditLog({ action: "task.submit" });
    expect(audited.map((e) => [e.body.userId, e.body.resource, e.body.result])).toContainEqual(["dev", "coder", "denied"]);
  });

  it("an agent this node does not hold keeps the skills a well-known agent uses, so routing it elsewhere is no way around them", () => {
    const bare = agentSkills(createBuiltinRegistry());
    expect(bare("shell")).toEqual(["shell-exec"]);
    expect(bare("echo")).toEqual([]);
    expect(bare("unknown")).toEqual([]);
  });

  it("a cancel needs task:cancel, whatever the agent", async () => {
    expect(await service.authorizeTask(ctx("bot", ["ci"]), { action: "task.cancel", taskId: "t1" })).toEqual({ allowed: false, reason: "no role of bot grants task:cancel; developer would (an admin grants one: coderclaw roles grant bot developer)" });
    expect(await service.authorizeTask(ctx("dev", ["developer"]), { action: "task.cancel", taskId: "t1" })).toMatchObject({ allowed: true });
  });
});
