import { describe, expect, it } from "vitest";
import { GrantStore, PermissionDeniedError, SessionManager, generateSigner, signRoleGrant } from "../../src/security/index.js";
import { meshIdFor } from "./helpers.js";

const MESH = meshIdFor("a");

function setup() {
  let now = 1_000_000;
  const owner = generateSigner();
  const node = generateSigner();
  const grants = new GrantStore({ meshId: MESH, rootAdmins: [owner.peerId], now: () => now });
  grants.add(signRoleGrant(owner, { subject: "alice", roles: ["developer"], meshId: MESH, issuedAt: now }));
  grants.add(signRoleGrant(owner, { subject: "alice", roles: ["ci"], meshId: MESH, issuedAt: now, expiresAt: now + 5_000 }));
  grants.add(signRoleGrant(owner, { subject: "runner-device", roles: ["ci"], meshId: MESH, issuedAt: now }));
  const sessions = new SessionManager({
    signer: node,
    meshId: MESH,
    grantedRoles: (userId, deviceId) => new Set([...grants.rolesOf(userId), ...grants.rolesOf(deviceId)]),
    ttlMs: 60_000,
    now: () => now,
  });
  return { sessions, advance: (ms: number) => (now += ms) };
}

describe("sessions", () => {
  it("never holds more than the user's (and device's) granted roles", () => {
    const { sessions } = setup();
    expect(sessions.createSession("alice", "laptop", ["developer", "ci"]).roles).toEqual(["ci", "developer"]);
    expect(sessions.createSession("bob", "runner-device", ["ci"]).roles).toEqual(["ci"]);
    expect(() => sessions.createSession("alice", "laptop", ["developer", "admin"])).toThrow(PermissionDeniedError);
    expect(() => sessions.createSession("alice", "laptop", [])).toThrow(/at least one role/);
    expect(sessions.createSession("carol", "laptop", ["readonly"], { providerRoles: ["readonly"] }).roles).toEqual(["readonly"]);
  });

  it("shrinks a live session when a grant expires", () => {
    const { sessions, advance } = setup();
    const s = sessions.createSession("alice", "laptop", ["developer", "ci"]);
    advance(5_000);
    const check = sessions.verify(s.token, "laptop");
    expect(check.ok && check.session.roles).toEqual(["developer"]);
  });

  it("rotates: the new token works, the old one is refused", () => {
    const { sessions } = setup();
    const s = sessions.createSession("alice", "laptop", ["developer"]);
    const rotated = sessions.rotate(s.token);
    expect(rotated.ok).toBe(true);
    if (!rotated.ok) return;
    expect(rotated.session.id).toBe(s.id);
    expect(rotated.session.token).not.toBe(s.token);
    expect(sessions.verify(rotated.session.token).ok).toBe(true);
    expect(sessions.verify(s.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/rotated/) });
  });

  it("refuses expired, revoked, tampered, truncated and unknown tokens", () => {
    const { sessions, advance } = setup();
    const s = sessions.createSession("alice", "laptop", ["developer"]);
    const [prefix, claims, sig] = s.token.split(".") as [string, string, string];
    const flipped = `${prefix}.${claims}.${sig.startsWith("A") ? "B" : "A"}${sig.slice(1)}`;
    expect(sessions.verify(flipped)).toMatchObject({ ok: false, reason: "session token signature does not verify" });
    expect(sessions.verify(`${prefix}.${claims}`)).toMatchObject({ ok: false, reason: "malformed session token" });
    expect(sessions.verify("Bearer nonsense")).toMatchObject({ ok: false, reason: "malformed session token" });
    expect(sessions.verify(s.token, "other-device")).toMatchObject({ ok: false, reason: expect.stringMatching(/belongs to device laptop/) });

    const other = setup().sessions.createSession("alice", "laptop", ["developer"]);
    expect(sessions.verify(other.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/not by this node/) });

    expect(sessions.revoke(s.id, "logout")).toBe(true);
    expect(sessions.hasEnded(s.id)).toBe(true);
    expect(sessions.verify(s.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/revoked \(logout\)/) });

    const t = sessions.createSession("alice", "laptop", ["developer"]);
    advance(60_000);
    expect(sessions.verify(t.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/expired/) });
  });

  it("ends every session of a revoked device", () => {
    const { sessions } = setup();
    const a = sessions.createSession("alice", "laptop", ["developer"]);
    const b = sessions.createSession("alice", "desktop", ["developer"]);
    expect(sessions.revokeDevice("laptop", "stolen")).toEqual([a.id]);
    expect(sessions.verify(a.token).ok).toBe(false);
    expect(sessions.verify(b.token).ok).toBe(true);
  });
});
