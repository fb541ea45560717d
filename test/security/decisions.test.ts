import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  Authorizer,
  GrantStore,
  PERMISSIONS,
  grantId,
  TRUST_LEVELS,
  generateSigner,
  repoPolicySchema,
  signRoleGrant,
  teamPolicySchema,
  type Permission,
  type SecurityContext,
} from "../../src/security/index.js";
import { issueRevocation } from "../../identity/index.js";
import { meshIdFor } from "./helpers.js";

const MESH = meshIdFor("a");
const ROLE_NAMES = ["admin", "developer", "readonly", "ci", "reviewer", "operator", "ghost"];
const AGENTS = ["coder", "deployer", "planner"];
const SKILLS = ["shell", "lint", "fetch"];

const arbContext = fc.record({
  roles: fc.subarray(ROLE_NAMES),
  deviceTrustLevel: fc.constantFrom(...TRUST_LEVELS),
  origin: fc.constantFrom("local" as const, "remote" as const, "http" as const),
  sessionId: fc.option(fc.constantFrom("s1", "s2"), { nil: undefined }),
});

const arbPolicy = fc.record({
  enforceTrust: fc.boolean(),
  minimumTrustLevel: fc.constantFrom(...TRUST_LEVELS),
  allowedRoles: fc.option(fc.subarray(ROLE_NAMES, { minLength: 1 }), { nil: undefined }),
  remote: fc.option(fc.record({ allow: fc.boolean(), permissions: fc.option(fc.subarray([...PERMISSIONS]), { nil: undefined }) }), { nil: undefined }),
  agentPolicies: fc.dictionary(fc.constantFrom(...AGENTS), fc.record({ allowedRoles: fc.option(fc.subarray(ROLE_NAMES), { nil: undefined }), requireDeviceTrust: fc.option(fc.constantFrom(true, false, "trusted" as const), { nil: undefined }) })),
  skillPolicies: fc.dictionary(fc.constantFrom(...SKILLS), fc.record({ dangerous: fc.boolean(), requiredPermissions: fc.option(fc.subarray([...PERMISSIONS]), { nil: undefined }), allowedRoles: fc.option(fc.subarray(ROLE_NAMES), { nil: undefined }) })),
  deniedSkills: fc.subarray(SKILLS),
  deniedAgents: fc.subarray(AGENTS),
});

type PolicyInput = typeof arbPolicy extends fc.Arbitrary<infer T> ? T : never;

function authorizer(p: PolicyInput, reverse: boolean): Authorizer {
  const order = <T>(entries: [string, T][]) => Object.fromEntries(reverse ? entries.reverse() : entries);
  const strip = <T extends object>(o: T) => JSON.parse(JSON.stringify(o)) as T;
  return new Authorizer({
    meshId: MESH,
    repoPolicy: repoPolicySchema.parse(
      strip({
        enforceTrust: p.enforceTrust,
        minimumTrustLevel: p.minimumTrustLevel,
        allowedRoles: p.allowedRoles === undefined ? undefined : reverse ? [...p.allowedRoles].reverse() : p.allowedRoles,
        remote: p.remote,
        roles: order([
          ["reviewer", { inherits: ["readonly"], additionalPermissions: ["task:cancel"] }],
          ["operator", { inherits: ["reviewer", "ci"], additionalPermissions: ["skill:execute"] }],
        ]),
        agentPolicies: order(Object.entries(p.agentPolicies)),
        skillPolicies: order(Object.entries(p.skillPolicies)),
      }),
    ),
    teamPolicy: teamPolicySchema.parse({ deniedSkills: reverse ? [...p.deniedSkills].reverse() : p.deniedSkills, deniedAgents: reverse ? [...p.deniedAgents].reverse() : p.deniedAgents }),
  });
}

function contextOf(c: { roles: string[]; deviceTrustLevel: SecurityContext["deviceTrustLevel"]; origin: SecurityContext["origin"]; sessionId: string | undefined }, roles: string[]): SecurityContext {
  return { userId: "u", roles, deviceId: "d", deviceTrustLevel: c.deviceTrustLevel, origin: c.origin, meshId: MESH, ...(c.sessionId === undefined ? {} : { sessionId: c.sessionId }) };
}

describe("decisions", () => {
  it("property: decisions do not depend on the order of roles or of policy entries", () => {
    fc.assert(
      fc.property(arbPolicy, arbContext, fc.constantFrom(...PERMISSIONS), fc.constantFrom(...AGENTS), fc.constantFrom(...SKILLS), (policy, ctx, permission, agent, skill) => {
        const a = authorizer(policy, false);
        const b = authorizer(policy, true);
        const forward = contextOf(ctx, ctx.roles);
        const backward = contextOf(ctx, [...ctx.roles].reverse());
        expect(b.checkPermission(backward, permission)).toEqual(a.checkPermission(forward, permission));
        expect(b.checkAgentAccess(backward, agent)).toEqual(a.checkAgentAccess(forward, agent));
        expect(b.checkSkillAccess(backward, skill)).toEqual(a.checkSkillAccess(forward, skill));
        expect(b.canReadTask(backward, { id: "t", sessionId: "s1" })).toEqual(a.canReadTask(forward, { id: "t", sessionId: "s1" }));
      }),
      { numRuns: 300 },
    );
  });

  it("property: a forbid beats every permit, even admin:all", () => {
    fc.assert(
      fc.property(arbPolicy, arbContext, fc.constantFrom(...PERMISSIONS), (policy, ctx, permission: Permission) => {
        const base = authorizer(policy, false);
        const admin = contextOf(ctx, [...ctx.roles, "admin"]);
        expect(base.checkPermission({ ...admin, meshId: meshIdFor("z") }, permission).allowed).toBe(false);
        const revoked = new Authorizer({ meshId: MESH, repoPolicy: repoPolicySchema.parse({}), isDeviceRevoked: () => true });
        expect(revoked.checkPermission(admin, permission).allowed).toBe(false);
        const remoteDenied = authorizer({ ...policy, remote: { allow: false, permissions: undefined } }, false);
        expect(remoteDenied.checkPermission({ ...admin, origin: "remote" }, permission).allowed).toBe(false);
        for (const skill of policy.deniedSkills) expect(base.checkSkillAccess(admin, skill).allowed).toBe(false);
        for (const agent of policy.deniedAgents) expect(base.checkAgentAccess(admin, agent).reason).toBe(`agent ${agent} is denied by the organization policy`);
      }),
      { numRuns: 200 },
    );
  });

  it("property: default deny, nothing is allowed without a role that grants it", () => {
    fc.assert(
      fc.property(arbPolicy, arbContext, fc.constantFrom(...PERMISSIONS), fc.constantFrom(...AGENTS), fc.constantFrom(...SKILLS), (policy, ctx, permission, agent, skill) => {
        const a = authorizer(policy, false);
        for (const roles of [[], ["ghost"]]) {
          const none = contextOf(ctx, roles);
          expect(a.checkPermission(none, permission).allowed).toBe(false);
          expect(a.checkAgentAccess(none, agent).allowed).toBe(false);
          expect(a.checkSkillAccess(none, skill).allowed).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("gives the seed's built-in answers", () => {
    const a = new Authorizer({ meshId: MESH });
    const ctx = (roles: string[]): SecurityContext => ({ userId: "u", roles, deviceId: "d", deviceTrustLevel: "verified", origin: "local", meshId: MESH });
    expect(a.checkPermission(ctx(["developer"]), "task:submit")).toEqual({ allowed: true, reason: "allowed" });
    expect(a.checkPermission(ctx(["developer"]), "config:write").allowed).toBe(false);
    expect(a.checkPermission(ctx(["admin"]), "config:write").allowed).toBe(true);
    expect(a.checkPermission(ctx(["readonly", "ci"]), "task:submit").allowed).toBe(true);
    expect(a.missingRequiredSkills(["lint"])).toEqual([]);
  });
});

describe("role grants", () => {
  const owner = generateSigner();
  const deputies = [generateSigner(), generateSigner(), generateSigner()];
  const signers = [owner, ...deputies];

  it("property: the roles in force do not depend on the order grants arrive in", () => {
    const arbGrant = fc.record({
      issuer: fc.integer({ min: 0, max: signers.length - 1 }),
      subject: fc.oneof(fc.integer({ min: 1, max: deputies.length }).map((i) => signers[i]?.peerId as string), fc.constantFrom("alice", "bob")),
      roles: fc.subarray(["admin", "developer", "readonly", "ci"], { minLength: 1 }),
      expired: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbGrant, { maxLength: 12 }).chain((grants) => fc.tuple(fc.constant(grants), fc.shuffledSubarray(grants.map((_, i) => i), { minLength: grants.length, maxLength: grants.length }))), ([grants, order]) => {
        const now = 1_000_000;
        const statements = grants.map((g) => signRoleGrant(signers[g.issuer] ?? owner, { subject: g.subject, roles: g.roles, meshId: MESH, issuedAt: now - 10, ...(g.expired ? { expiresAt: now - 1 } : {}) }));
        const a = new GrantStore({ meshId: MESH, rootAdmins: [owner.peerId], now: () => now });
        const b = new GrantStore({ meshId: MESH, rootAdmins: [owner.peerId], now: () => now });
        for (const s of statements) a.add(s);
        for (const i of order) b.add(statements[i] as Uint8Array);
        for (const subject of ["alice", "bob", ...signers.map((s) => s.peerId)]) {
          expect([...b.rolesOf(subject)].sort()).toEqual([...a.rolesOf(subject)].sort());
          expect(b.isAdmin(subject)).toBe(a.isAdmin(subject));
        }
      }),
      { numRuns: 60 },
    );
  });

  it("honours revocations by a root admin or the grant's issuer, in any order", () => {
    const deputy = deputies[0] as (typeof deputies)[number];
    const stranger = deputies[1] as (typeof deputies)[number];
    const toAlice = signRoleGrant(owner, { subject: "alice", roles: ["developer"], meshId: MESH, issuedAt: 1 });
    const makeDeputy = signRoleGrant(owner, { subject: deputy.peerId, roles: ["admin"], meshId: MESH, issuedAt: 1 });
    const toBob = signRoleGrant(deputy, { subject: "bob", roles: ["ci"], meshId: MESH, issuedAt: 1 });
    const byStranger = issueRevocation(stranger, grantId(toAlice), "", 2).bytes;
    const byOwner = issueRevocation(owner, grantId(toAlice), "left the team", 2).bytes;
    const byDeputy = issueRevocation(deputy, grantId(toBob), "", 2).bytes;

    const store = new GrantStore({ meshId: MESH, rootAdmins: [owner.peerId] });
    for (const g of [toAlice, makeDeputy, toBob]) store.add(g);
    expect(store.addRevocation(byStranger)).toMatchObject({ status: "ignored", actor: stranger.peerId });
    expect([...store.rolesOf("alice")]).toEqual(["developer"]);
    expect(store.addRevocation(byOwner)).toMatchObject({ status: "accepted", actor: owner.peerId });
    expect(store.addRevocation(byDeputy)).toMatchObject({ status: "accepted" });
    expect(store.rolesOf("alice").size).toBe(0);
    expect(store.rolesOf("bob").size).toBe(0);
    expect(store.addRevocation(toAlice)).toMatchObject({ status: "rejected" });

    const reversed = new GrantStore({ meshId: MESH, rootAdmins: [owner.peerId] });
    expect(reversed.addRevocation(byOwner)).toMatchObject({ status: "ignored", reason: expect.stringMatching(/held \(yet\)/) });
    expect(reversed.add(toAlice)).toMatchObject({ status: "ignored", reason: "grant was revoked" });
    expect(reversed.rolesOf("alice").size).toBe(0);
  });

  it("follows admin delegation, and drops it when the delegating grant expires", () => {
    let now = 1_000;
    const store = new GrantStore({ meshId: MESH, rootAdmins: [owner.peerId], now: () => now });
    const deputy = deputies[0] as (typeof deputies)[number];
    const fromDeputy = signRoleGrant(deputy, { subject: "alice", roles: ["developer"], meshId: MESH, issuedAt: 900 });
    expect(store.add(fromDeputy).status).toBe("ignored");
    expect(store.add(signRoleGrant(owner, { subject: deputy.peerId, roles: ["admin"], meshId: MESH, issuedAt: 900, expiresAt: 2_000 })).status).toBe("accepted");
    expect([...store.rolesOf("alice")]).toEqual(["developer"]);
    now = 2_000;
    expect(store.rolesOf("alice").size).toBe(0);
    expect(store.isAdmin(deputy.peerId)).toBe(false);
    expect(store.statements()).toHaveLength(2);
  });
});
