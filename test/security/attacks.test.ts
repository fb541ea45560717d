import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AuditLog,
  PermissionDeniedError,
  SecurityService,
  UnauthenticatedError,
  generateSigner,
  grantId,
  parseRepoPolicy,
  parseTeamPolicy,
  signRoleGrant,
  type AuditQuery,
  type DeviceStanding,
  type SecurityContext,
} from "../../src/security/index.js";
import { issueRevocation } from "../../identity/index.js";
import { meshIdFor, tempLevel } from "./helpers.js";

const MESH = meshIdFor("a");

const REPO_POLICY = `
roles:
  ci-runner:
    inherits: [ci]
    additionalPermissions: [skill:execute]
agentPolicies:
  deployer:
    requireDeviceTrust: trusted
skillPolicies:
  shell:
    dangerous: true
    requiredPermissions: [skill:execute]
    allowedRoles: [developer]
`;

const TEAM_POLICY = `
enforceTrust: true
minimumTrustLevel: verified
`;

/**
 * The attack table: every row is an attempt that must be refused, and every refusal
 * must leave a denied entry in the node's audit log.
 */
describe("attack table", () => {
  let level: Awaited<ReturnType<typeof tempLevel>>;
  let clock: number;
  let service: SecurityService;
  const node = generateSigner();
  const owner = generateSigner();
  const laptop = generateSigner();
  const stranger = generateSigner();
  const standing = new Map<string, DeviceStanding>();

  beforeEach(async () => {
    level = await tempLevel();
    clock = Date.UTC(2026, 10, 24, 3, 0, 0);
    standing.clear();
    standing.set(laptop.peerId, { level: "verified", revoked: false });
    standing.set(stranger.peerId, { level: "untrusted", revoked: false });
    service = new SecurityService({
      meshId: MESH,
      signer: node,
      audit: new AuditLog({ db: level.db, signer: node, now: () => clock }),
      rootAdmins: [owner.peerId],
      repoPolicy: parseRepoPolicy(REPO_POLICY),
      teamPolicy: parseTeamPolicy(TEAM_POLICY),
      deviceStanding: (id) => standing.get(id),
      sessionTtlMs: 15 * 60_000,
      now: () => clock,
    });
    for (const [subject, roles] of [
      ["reader", ["readonly"]],
      ["ci-bot", ["ci", "ci-runner"]],
      ["dev", ["developer"]],
      ["dev2", ["developer"]],
    ] as const) {
      expect((await service.addRoleGrant(signRoleGrant(owner, { subject, roles: [...roles], meshId: MESH, issuedAt: clock }))).status).toBe("accepted");
    }
  });

  afterEach(async () => {
    await service.audit.close();
    await level.dispose();
  });

  const login = async (userId: string, roles: string[], device = laptop.peerId): Promise<{ token: string; context: SecurityContext }> => {
    const session = await service.createSession(userId, device, roles);
    return { token: session.token, context: await service.authenticate(session.token, { deviceId: device, origin: "local" }) };
  };

  const expectAudited = async (query: AuditQuery & { reason?: RegExp }) => {
    const { reason, ...filter } = query;
    const entries = await service.getAuditLog({ result: "denied", ...filter });
    const matching = entries.filter((e) => reason === undefined || reason.test(e.body.reason ?? ""));
    expect(matching, `no denied audit entry for ${JSON.stringify(query)}`).not.toHaveLength(0);
  };

  it("a flood of bad tokens: a burst of 20 audited, then one every 10 s saying how many went unaudited", async () => {
    const refused = async (): Promise<number> => (await service.getAuditLog({ action: "auth.token", result: "denied" })).length;
    for (let i = 0; i < 100; i++) await expect(service.authenticate(`cc1.forged${i}`, { deviceId: laptop.peerId, origin: "http" })).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(await refused()).toBe(20);
    clock += 10_000;
    await expect(service.authenticate("cc1.forged", { deviceId: laptop.peerId, origin: "http" })).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(await refused()).toBe(21);
    await expectAudited({ action: "auth.token", reason: /and 80 refused tokens not audited since the last audited one/ });
    // Another origin has its own allowance: a flood over HTTP does not hide a refusal on the control socket.
    await expect(service.authenticate("cc1.forged", { deviceId: laptop.peerId, origin: "local" })).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(await refused()).toBe(22);
  });

  it("a caller's flood of denied requests: a burst of 20 audited per caller, then one every 10 s saying how many went unaudited; allowed decisions all audited", async () => {
    const { context: reader } = await login("reader", ["readonly"]);
    const { context: other } = await login("reader", ["readonly"]);
    const denied = async (): Promise<number> => (await service.getAuditLog({ result: "denied", userId: "reader" })).length;
    for (let i = 0; i < 40; i++) expect((await service.authorizeTask(reader, { action: "task.submit", agentId: "shell" })).allowed).toBe(false);
    for (let i = 0; i < 40; i++) expect((await service.authorize(reader, { action: "admin.config", permission: "admin:all" })).allowed).toBe(false);
    for (let i = 0; i < 40; i++) expect((await service.checkWrite({ ...reader, readOnly: true }, "POST /v1/tasks")).allowed).toBe(false);
    expect(await denied()).toBe(20);
    // Another session of the same user has an allowance of its own: one flooding session does not hide another's denials.
    expect((await service.authorize(other, { action: "admin.config", permission: "admin:all" })).allowed).toBe(false);
    expect(await denied()).toBe(21);
    clock += 10_000;
    expect((await service.authorize(reader, { action: "admin.config", permission: "admin:all" })).allowed).toBe(false);
    expect(await denied()).toBe(22);
    await expectAudited({ userId: "reader", reason: /and 100 denials of this caller not audited since the last audited one/ });
    // A peer names the user it acts for: naming a new one each time does not buy a new allowance.
    for (let i = 0; i < 40; i++) {
      const peer = service.contextForPeer({ userId: `user-${i}`, roles: ["admin"] }, stranger.peerId);
      expect((await service.authorize(peer, { action: "admin.config", permission: "admin:all" })).allowed).toBe(false);
    }
    expect((await service.getAuditLog({ result: "denied" })).filter((e) => e.body.deviceId === stranger.peerId)).toHaveLength(20);
    const allowed = (await service.getAuditLog({ result: "allowed", userId: "dev" })).length;
    const { context: dev } = await login("dev", ["developer"]);
    for (let i = 0; i < 40; i++) expect((await service.authorizeTask(dev, { action: "task.submit" })).allowed).toBe(true);
    expect((await service.getAuditLog({ result: "allowed", userId: "dev" })).length).toBe(allowed + 41);
  });

  it("readonly submitting a task", async () => {
    const { context } = await login("reader", ["readonly"]);
    const decision = await service.authorize(context, { action: "task.submit", permission: "task:submit", resource: "task-1" });
    expect(decision).toEqual({ allowed: false, reason: "no role of reader grants task:submit; ci, ci-runner, developer would (an admin grants one: coderclaw roles grant reader ci)" });
    await expectAudited({ action: "task.submit", userId: "reader" });
    await expect(service.enforce(context, { action: "task.submit", permission: "task:submit" })).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it("ci invoking a dangerous skill, with and without skill:execute", async () => {
    const plain = await login("ci-bot", ["ci"]);
    expect(await service.authorize(plain.context, { action: "skill.execute", permission: "skill:execute", skillId: "shell" })).toMatchObject({ allowed: false, reason: "no role of ci-bot grants skill:execute; ci-runner, developer would (an admin grants one: coderclaw roles grant ci-bot ci-runner)" });
    const runner = await login("ci-bot", ["ci-runner"]);
    expect(await service.authorize(runner.context, { action: "skill.execute", permission: "skill:execute", skillId: "shell" })).toMatchObject({ allowed: false, reason: "skill shell is restricted to roles developer" });
    await expectAudited({ action: "skill.execute", userId: "ci-bot", reason: /restricted to roles developer/ });
    await expectAudited({ action: "skill.execute", userId: "ci-bot", reason: /grants skill:execute/ });
  });

  it("an untrusted device submitting", async () => {
    const { context } = await login("dev", ["developer"], stranger.peerId);
    expect(context.deviceTrustLevel).toBe("untrusted");
    const real = await service.authorize(context, { action: "task.submit", permission: "task:submit" });
    expect(real).toEqual({ allowed: false, reason: `organization policy requires device trust verified, device ${stranger.peerId} is untrusted` });
    await expectAudited({ action: "task.submit", userId: "dev", reason: /requires device trust verified/ });
  });

  it("a revoked device submitting, with an old context and with its token", async () => {
    const { token, context } = await login("dev", ["developer"]);
    await service.revokeDevice(laptop.peerId, { userId: owner.peerId }, "laptop stolen");
    expect(await service.authorize(context, { action: "task.submit", permission: "task:submit" })).toMatchObject({ allowed: false, reason: `device ${laptop.peerId} is revoked` });
    await expect(service.authenticate(token, { deviceId: laptop.peerId, origin: "local" })).rejects.toBeInstanceOf(UnauthenticatedError);
    await expect(service.createSession("dev", laptop.peerId, ["developer"])).rejects.toBeInstanceOf(PermissionDeniedError);
    await expectAudited({ action: "task.submit", userId: "dev", reason: /is revoked/ });
    await expectAudited({ action: "auth.token", userId: "dev", reason: /revoked/ });
    await expectAudited({ action: "session.create", userId: "dev", reason: /is revoked/ });
  });

  it("a device revoked by the trust store (signed revocation replicated from elsewhere)", async () => {
    const { token } = await login("dev", ["developer"]);
    standing.set(laptop.peerId, { level: "verified", revoked: true });
    await expect(service.authenticate(token, { deviceId: laptop.peerId, origin: "local" })).rejects.toThrow(/is revoked/);
    await expectAudited({ action: "auth.token", reason: /is revoked/ });
  });

  it("a forged role grant: non-admin issuer, tampered bytes, another mesh", async () => {
    const byStranger = await service.addRoleGrant(signRoleGrant(stranger, { subject: "reader", roles: ["admin"], meshId: MESH }));
    expect(byStranger).toMatchObject({ status: "ignored", reason: `issuer ${stranger.peerId} is not an admin of mesh ${MESH}` });

    // A genuine grant to someone else, re-addressed to the attacker: same length, so still well-formed CBOR.
    const genuine = Buffer.from(signRoleGrant(owner, { subject: "dev3", roles: ["admin"], meshId: MESH }));
    genuine.write("evil", genuine.indexOf(Buffer.from("dev3")), "latin1");
    const forged = await service.addRoleGrant(new Uint8Array(genuine));
    expect(forged).toMatchObject({ status: "rejected", reason: "forged grant: role-grant signature does not verify" });
    expect(service.grants.rolesOf("evil").size).toBe(0);

    const elsewhere = await service.addRoleGrant(signRoleGrant(owner, { subject: "reader", roles: ["admin"], meshId: meshIdFor("b") }));
    expect(elsewhere).toMatchObject({ status: "rejected", reason: `grant is for mesh ${meshIdFor("b")}, not ${MESH}` });

    expect([...service.grants.rolesOf("reader")]).toEqual(["readonly"]);
    await expect(service.createSession("reader", laptop.peerId, ["admin"])).rejects.toThrow("reader is not granted role(s) admin");
    await expectAudited({ action: "grant.add", userId: stranger.peerId, reason: /^ignored: issuer/ });
    await expectAudited({ action: "grant.add", reason: /^rejected: forged grant/ });
    await expectAudited({ action: "grant.add", reason: /^rejected: grant is for mesh/ });
    await expectAudited({ action: "session.create", userId: "reader", reason: /not granted role\(s\) admin/ });
  });

  it("a member's flood of statements of no effect: every node audits a burst of 20 per issuer and action, then one every 10 s saying how many went unaudited", async () => {
    const ignored = async (issuer: string): Promise<number> => (await service.getAuditLog({ action: "grant.add", result: "denied", userId: issuer })).length;
    for (let i = 0; i < 60; i++) expect((await service.addRoleGrant(signRoleGrant(stranger, { subject: `victim-${i}`, roles: ["admin"], meshId: MESH }))).status).toBe("ignored");
    expect(await ignored(stranger.peerId)).toBe(20);
    // Another issuer's refusals, and another action of the same issuer, are audited apart: the flood hides neither.
    expect((await service.addRoleGrant(signRoleGrant(laptop, { subject: "dev", roles: ["admin"], meshId: MESH }))).status).toBe("ignored");
    expect(await ignored(laptop.peerId)).toBe(1);
    await service.record({ action: "device.rename", userId: stranger.peerId, deviceId: stranger.peerId, resource: laptop.peerId, result: "denied", reason: "only an admin names another device" });
    expect((await service.getAuditLog({ action: "device.rename", userId: stranger.peerId })).length).toBe(1);
    // Keys made for the purpose, one per statement, are no devices of the mesh: they share the stranger's allowance, and bring none of their own.
    for (let i = 0; i < 40; i++) expect((await service.addRoleGrant(signRoleGrant(generateSigner(), { subject: `victim-${i}`, roles: ["admin"], meshId: MESH }))).status).toBe("ignored");
    const fromNoDevice = async (): Promise<number> => (await service.getAuditLog({ action: "grant.add", result: "denied" })).filter((e) => e.body.userId !== laptop.peerId).length;
    expect(await fromNoDevice()).toBe(20);
    clock += 10_000;
    await service.addRoleGrant(signRoleGrant(stranger, { subject: "victim-last", roles: ["admin"], meshId: MESH }));
    expect(await ignored(stranger.peerId)).toBe(21);
    await expectAudited({ action: "grant.add", userId: stranger.peerId, reason: /and 80 such denials not audited since the last audited one/ });
    expect(await fromNoDevice()).toBe(21);
    // What took effect is always on record.
    for (let i = 0; i < 30; i++) expect((await service.addRoleGrant(signRoleGrant(owner, { subject: `member-${i}`, roles: ["developer"], meshId: MESH, issuedAt: clock }))).status).toBe("accepted");
    expect((await service.getAuditLog({ action: "grant.add", result: "allowed", userId: owner.peerId })).length).toBe(34);
  });

  it("a session whose role grant was revoked after it opened", async () => {
    const grant = signRoleGrant(owner, { subject: "dev3", roles: ["developer"], meshId: MESH, issuedAt: clock });
    await service.addRoleGrant(grant);
    const { token } = await login("dev3", ["developer"]);
    expect((await service.revokeRoleGrant(issueRevocation(owner, grantId(grant), "left", clock).bytes)).status).toBe("accepted");
    const context = await service.authenticate(token, { deviceId: laptop.peerId, origin: "local" });
    expect(context.roles).toEqual([]);
    expect(await service.authorize(context, { action: "task.submit", permission: "task:submit" })).toMatchObject({ allowed: false, reason: "no role of dev3 grants task:submit; ci, ci-runner, developer would (an admin grants one: coderclaw roles grant dev3 ci)" });
    await expectAudited({ action: "task.submit", userId: "dev3" });
    expect(await service.getAuditLog({ action: "grant.revoke", userId: owner.peerId, result: "allowed" })).toHaveLength(1);
  });

  it("a session token replayed after revocation, and after rotation", async () => {
    const first = await login("dev", ["developer"]);
    const rotated = await service.rotateSession(first.token);
    await expect(service.authenticate(first.token, { deviceId: laptop.peerId, origin: "local" })).rejects.toThrow(/superseded token replayed/);
    await service.revokeSession(rotated.id, { userId: "dev" }, "logout");
    await expect(service.authenticate(rotated.token, { deviceId: laptop.peerId, origin: "local" })).rejects.toThrow(/revoked \(logout\); token replayed/);
    expect(await service.authorize(first.context, { action: "task.read", permission: "task:read" })).toMatchObject({ allowed: false, reason: `session ${first.context.sessionId} has ended` });
    await expectAudited({ action: "auth.token", userId: "dev", reason: /superseded token replayed/ });
    await expectAudited({ action: "auth.token", userId: "dev", reason: /token replayed/ });
    await expectAudited({ action: "task.read", userId: "dev", reason: /has ended/ });
  });

  it("an expired session token", async () => {
    const { token } = await login("dev", ["developer"]);
    clock += 16 * 60_000;
    await expect(service.authenticate(token, { deviceId: laptop.peerId, origin: "local" })).rejects.toThrow(/expired/);
    await expect(service.rotateSession(token)).rejects.toThrow(/expired/);
    await expectAudited({ action: "auth.token", userId: "dev", reason: /expired/ });
    await expectAudited({ action: "session.rotate", userId: "dev", reason: /expired/ });
  });

  it("a token from another mesh, from another node, or for another device", async () => {
    const level2 = await tempLevel();
    try {
      const otherMesh = new SecurityService({ meshId: meshIdFor("b"), signer: node, audit: new AuditLog({ db: level2.db, signer: node }), rootAdmins: ["dev"] });
      const foreignMesh = await otherMesh.createSession("dev", laptop.peerId, ["admin"]);
      await expect(service.authenticate(foreignMesh.token, { deviceId: laptop.peerId, origin: "local" })).rejects.toThrow(`session token is for mesh ${meshIdFor("b")}, not ${MESH}`);

      const otherNode = generateSigner();
      const sameMesh = new SecurityService({ meshId: MESH, signer: otherNode, audit: new AuditLog({ db: level2.db, signer: otherNode }), rootAdmins: ["dev"] });
      const foreignNode = await sameMesh.createSession("dev", laptop.peerId, ["admin"]);
      await expect(service.authenticate(foreignNode.token, { deviceId: laptop.peerId, origin: "local" })).rejects.toThrow(`session token issued by ${otherNode.peerId}, not by this node`);
      await otherMesh.audit.close();
      await sameMesh.audit.close();
    } finally {
      await level2.dispose();
    }
    const mine = await login("dev", ["developer"]);
    await expect(service.authenticate(mine.token, { deviceId: stranger.peerId, origin: "local" })).rejects.toThrow(/belongs to device/);
    await expectAudited({ action: "auth.token", reason: /is for mesh/ });
    await expectAudited({ action: "auth.token", reason: /not by this node/ });
    await expectAudited({ action: "auth.token", reason: /belongs to device/ });
  });

  it("a policy requiring more trust than the device has", async () => {
    const { context } = await login("dev", ["developer"]);
    expect(context.deviceTrustLevel).toBe("verified");
    expect(await service.authorize(context, { action: "agent.invoke", permission: "agent:invoke", agentId: "deployer" })).toEqual({
      allowed: false,
      reason: `agent deployer requires device trust trusted, device ${laptop.peerId} is verified`,
    });
    const untrusted = await login("dev", ["developer"], stranger.peerId);
    expect(await service.authorize(untrusted.context, { action: "agent.invoke", permission: "agent:invoke", agentId: "coder" })).toMatchObject({ allowed: false });
    await expectAudited({ action: "agent.invoke", reason: /requires device trust trusted/ });
    await expectAudited({ action: "agent.invoke", reason: /requires device trust verified, device .* is untrusted/ });
  });

  it("a session reading or streaming another session's task; an admin may, and that is audited too", async () => {
    const a = await login("dev", ["developer"]);
    const b = await login("dev2", ["developer"]);
    const task = { id: "task-of-b", sessionId: b.context.sessionId };
    expect(await service.authorizeTaskRead(b.context, task)).toMatchObject({ allowed: true, crossSession: false });
    expect(await service.authorizeTaskRead(a.context, task)).toMatchObject({ allowed: false, reason: "task task-of-b belongs to another session" });
    expect(await service.authorizeTaskRead(a.context, task, "task.stream")).toMatchObject({ allowed: false });
    await expectAudited({ action: "task.read", userId: "dev", reason: /another session/ });
    await expectAudited({ action: "task.stream", userId: "dev", reason: /another session/ });

    const admin = await login(owner.peerId, ["admin"]);
    expect(await service.authorizeTaskRead(admin.context, task)).toMatchObject({ allowed: true, crossSession: true });
    const allowed = await service.getAuditLog({ action: "task.read", userId: owner.peerId, result: "allowed" });
    expect(allowed.map((e) => e.body.resource)).toEqual(["task-of-b"]);
  });

  it("a remote request, and a remote peer claiming roles it was never granted", async () => {
    // The laptop holds no grant here: it can lend the reader nothing, whatever the reader holds.
    expect(service.contextForPeer({ userId: "reader", roles: ["admin", "readonly"] }, laptop.peerId).roles).toEqual([]);
    // Once it holds some, it lends only what both it and the reader hold, and only what is claimed.
    await service.addRoleGrant(signRoleGrant(owner, { subject: laptop.peerId, roles: ["readonly", "developer"], meshId: MESH, issuedAt: clock }));
    const claimed = service.contextForPeer({ userId: "reader", roles: ["admin", "readonly", "developer"] }, laptop.peerId);
    expect(claimed.roles).toEqual(["readonly"]);
    expect(await service.authorize(claimed, { action: "task.read", permission: "task:read" })).toEqual({ allowed: false, reason: "remote requests are not allowed by the repository policy" });
    await expectAudited({ action: "task.read", userId: "reader", reason: /remote requests are not allowed/ });
  });

  it("mesh requests: a relayed token the relaying peer did not mint, a foreign mesh, an expired token, claimed roles beyond grants", async () => {
    const level2 = await tempLevel();
    const peer = generateSigner();
    const thief = generateSigner();
    const peerService = new SecurityService({ meshId: MESH, signer: peer, audit: new AuditLog({ db: level2.db, signer: peer }), rootAdmins: ["dev"], now: () => clock });
    try {
      service.setPolicies(parseRepoPolicy("remote:\n  allow: true\n"), undefined);
      standing.set(peer.peerId, { level: "verified", revoked: false });
      // On the submitting node "dev" is an admin; here only the owner's grant (developer) counts.
      const token = (await peerService.createSession("dev", peer.peerId, ["admin"])).token;
      const context = await service.authenticatePeer({ session: token, meshId: MESH }, peer.peerId);
      expect(context).toMatchObject({ userId: "dev", roles: [], origin: "remote", deviceTrustLevel: "verified" });
      expect(await service.authorize(context, { action: "task.submit", permission: "task:submit" })).toMatchObject({ allowed: false });

      const devToken = (await peerService.createSession("dev", peer.peerId, ["admin"])).token;
      await expect(service.authenticatePeer({ session: devToken, meshId: MESH }, thief.peerId)).rejects.toThrow(`session token issued by ${peer.peerId}, relayed by ${thief.peerId}`);
      await expect(service.authenticatePeer({ session: devToken, meshId: meshIdFor("b") }, peer.peerId)).rejects.toThrow(/request is for mesh/);
      clock += 2 * 60 * 60_000;
      await expect(service.authenticatePeer({ session: devToken, meshId: MESH }, peer.peerId)).rejects.toThrow(/expired/);

      await service.addRoleGrant(signRoleGrant(owner, { subject: peer.peerId, roles: ["ci"], meshId: MESH, issuedAt: clock }));
      const asDevice = await service.authenticatePeer({ meshId: MESH }, peer.peerId);
      expect(asDevice).toMatchObject({ userId: peer.peerId, roles: ["ci"] });
      expect(await service.authorize(asDevice, { action: "task.submit", permission: "task:submit" })).toMatchObject({ allowed: true });
      await expectAudited({ action: "auth.peer", reason: /relayed by/ });
      await expectAudited({ action: "auth.peer", reason: /request is for mesh/ });
      await expectAudited({ action: "auth.peer", userId: "dev", reason: /expired/ });
    } finally {
      await peerService.audit.close();
      await level2.dispose();
    }
  });

  it("any request while the audit log cannot be written (fails closed)", async () => {
    const { context } = await login("dev", ["developer"]);
    await level.db.close();
    expect(await service.authorize(context, { action: "task.submit", permission: "task:submit" })).toMatchObject({ allowed: false, reason: expect.stringMatching(/^audit log unavailable/) });
  });

  it("leaves an audit log that verifies", async () => {
    const { context } = await login("reader", ["readonly"]);
    await service.authorize(context, { action: "task.submit", permission: "task:submit" });
    const report = await service.verifyAudit();
    expect(report).toMatchObject({ ok: true, authors: 1, problems: [] });
    expect(report.entries).toBeGreaterThan(5);
  });
});
