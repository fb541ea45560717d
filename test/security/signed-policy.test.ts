import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog, SecurityService, generateSigner, signPolicy, signRoleGrant, type SecurityContext } from "../../src/security/index.js";
import { meshIdFor, tempLevel } from "./helpers.js";

const MESH = meshIdFor("e");

describe("signed, replicated policies", () => {
  let level: Awaited<ReturnType<typeof tempLevel>>;
  let service: SecurityService;
  const node = generateSigner();
  const owner = generateSigner();
  const outsider = generateSigner();

  beforeEach(async () => {
    level = await tempLevel();
    service = new SecurityService({ meshId: MESH, signer: node, audit: new AuditLog({ db: level.db, signer: node }), rootAdmins: [owner.peerId] });
    await service.addRoleGrant(signRoleGrant(owner, { subject: "dev", roles: ["developer"], meshId: MESH }));
  });
  afterEach(async () => {
    await service.audit.close();
    await level.dispose();
  });

  const remote: SecurityContext = { userId: "dev", roles: ["developer"], deviceId: "peer", deviceTrustLevel: "verified", origin: "remote", meshId: MESH };
  const submit = () => service.checkPermission(remote, "task:submit").allowed;

  it("applies an admin's policy and refuses the rest, auditing each", async () => {
    expect(submit()).toBe(false);
    expect(await service.applySignedPolicy(signPolicy(outsider, { meshId: MESH, scope: "repo", text: "remote: { allow: true }\n" }))).toMatchObject({ status: "ignored" });
    expect(submit()).toBe(false);

    const genuine = signPolicy(owner, { meshId: MESH, scope: "repo", text: "remote: { allow: true }\n" });
    expect(await service.applySignedPolicy({ ...genuine, text: "remote: { allow: true }\nallowedRoles: [admin]\n" })).toEqual({ status: "rejected", reason: "policy text does not match its signed hash" });
    expect(await service.applySignedPolicy(signPolicy(owner, { meshId: meshIdFor("f"), scope: "repo", text: "{}" }))).toMatchObject({ status: "rejected", reason: expect.stringMatching(/is for mesh/) });
    expect(await service.applySignedPolicy(signPolicy(owner, { meshId: MESH, scope: "team", text: "deniedSkills: shell\n" }))).toMatchObject({
      status: "rejected",
      reason: expect.stringMatching(/^mesh:team-policy@[0-9a-f]{12}:1:15: deniedSkills: /),
    });

    expect(await service.applySignedPolicy(genuine)).toMatchObject({ status: "accepted" });
    expect(submit()).toBe(true);
    const denied = await service.getAuditLog({ action: "config.policy", result: "denied" });
    expect(denied.map((e) => e.body.reason?.split(":")[0])).toEqual(["ignored", "rejected", "rejected", "rejected"]);
    expect(await service.getAuditLog({ action: "config.policy", result: "allowed" })).toHaveLength(1);
  });

  it("counts a policy once its issuer becomes an admin, and refuses role cycles up front", async () => {
    const deputy = generateSigner();
    expect(await service.applySignedPolicy(signPolicy(deputy, { meshId: MESH, scope: "repo", text: "remote: { allow: true }\n" }))).toMatchObject({ status: "ignored" });
    expect(submit()).toBe(false);
    await service.addRoleGrant(signRoleGrant(owner, { subject: deputy.peerId, roles: ["admin"], meshId: MESH }));
    expect(submit()).toBe(true);

    const cyclic = "roles:\n  a: { inherits: [b] }\n  b: { inherits: [a] }\n";
    expect(await service.applySignedPolicy(signPolicy(owner, { meshId: MESH, scope: "repo", text: cyclic }))).toMatchObject({ status: "rejected", reason: "role inheritance cycle: a -> b -> a" });
    expect(submit()).toBe(true);
  });

  it("keeps the newest policy per scope whatever the arrival order", async () => {
    const older = signPolicy(owner, { meshId: MESH, scope: "repo", text: "remote: { allow: true }\n", issuedAt: 1_000 });
    const newer = signPolicy(owner, { meshId: MESH, scope: "repo", text: "remote: { allow: false }\n", issuedAt: 2_000 });
    expect((await service.applySignedPolicy(newer)).status).toBe("accepted");
    expect(await service.applySignedPolicy(older)).toMatchObject({ status: "ignored", reason: "a newer repo policy is in force" });
    expect(submit()).toBe(false);

    const level2 = await tempLevel();
    const other = new SecurityService({ meshId: MESH, signer: node, audit: new AuditLog({ db: level2.db, signer: node }), rootAdmins: [owner.peerId] });
    try {
      await other.addRoleGrant(signRoleGrant(owner, { subject: "dev", roles: ["developer"], meshId: MESH }));
      await other.applySignedPolicy(older);
      await other.applySignedPolicy(newer);
      expect(other.checkPermission(remote, "task:submit").allowed).toBe(false);
    } finally {
      await other.audit.close();
      await level2.dispose();
    }
  });
});
