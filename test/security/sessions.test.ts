import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { GrantStore, PermissionDeniedError, SessionManager, generateSigner, openSessionFile, signRoleGrant, type SessionPersistence, type Signer } from "../../src/security/index.js";
import { tempDir } from "../helpers/temp-dir.js";
import { meshIdFor } from "./helpers.js";

const MESH = meshIdFor("a");

function setup(persisted: { persistence?: SessionPersistence; node?: Signer; now?: number; meshId?: string } = {}) {
  let now = persisted.now ?? 1_000_000;
  const owner = generateSigner();
  const node = persisted.node ?? generateSigner();
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
    ...(persisted.persistence && { persistence: persisted.persistence }),
  });
  return { sessions, node, advance: (ms: number) => (now += ms), now: () => now };
}

const dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

function sessionsFile(): string {
  const dir = tempDir("cc-sessions-");
  dirs.push(dir);
  return join(dir.path, "home", "sessions.json");
}

describe("sessions", () => {
  it("never holds more than the user's (and device's) granted roles", async () => {
    const { sessions } = setup();
    expect((await sessions.createSession("alice", "laptop", ["developer", "ci"])).roles).toEqual(["ci", "developer"]);
    expect((await sessions.createSession("bob", "runner-device", ["ci"])).roles).toEqual(["ci"]);
    await expect(sessions.createSession("alice", "laptop", ["developer", "admin"])).rejects.toThrow(PermissionDeniedError);
    await expect(sessions.createSession("alice", "laptop", [])).rejects.toThrow(/at least one role/);
    expect((await sessions.createSession("carol", "laptop", ["readonly"], { providerRoles: ["readonly"] })).roles).toEqual(["readonly"]);
  });

  it("shrinks a live session when a grant expires", async () => {
    const { sessions, advance } = setup();
    const s = await sessions.createSession("alice", "laptop", ["developer", "ci"]);
    advance(5_000);
    const check = sessions.verify(s.token, "laptop");
    expect(check.ok && check.session.roles).toEqual(["developer"]);
  });

  it("rotates: the new token works, the old one is refused", async () => {
    const { sessions } = setup();
    const s = await sessions.createSession("alice", "laptop", ["developer"]);
    const rotated = await sessions.rotate(s.token);
    expect(rotated.ok).toBe(true);
    if (!rotated.ok) return;
    expect(rotated.session.id).toBe(s.id);
    expect(rotated.session.token).not.toBe(s.token);
    expect(sessions.verify(rotated.session.token).ok).toBe(true);
    expect(sessions.verify(s.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/rotated/) });
  });

  it("refuses expired, revoked, tampered, truncated and unknown tokens", async () => {
    const { sessions, advance } = setup();
    const s = await sessions.createSession("alice", "laptop", ["developer"]);
    const [prefix, claims, sig] = s.token.split(".") as [string, string, string];
    const flipped = `${prefix}.${claims}.${sig.startsWith("A") ? "B" : "A"}${sig.slice(1)}`;
    expect(sessions.verify(flipped)).toMatchObject({ ok: false, reason: "session token signature does not verify" });
    expect(sessions.verify(`${prefix}.${claims}`)).toMatchObject({ ok: false, reason: "malformed session token" });
    expect(sessions.verify("Bearer nonsense")).toMatchObject({ ok: false, reason: "malformed session token" });
    expect(sessions.verify(s.token, "other-device")).toMatchObject({ ok: false, reason: expect.stringMatching(/belongs to device laptop/) });

    const other = await setup().sessions.createSession("alice", "laptop", ["developer"]);
    expect(sessions.verify(other.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/not by this node/) });

    expect(await sessions.revoke(s.id, "logout")).toBe(true);
    expect(sessions.hasEnded(s.id)).toBe(true);
    expect(sessions.verify(s.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/revoked \(logout\)/) });

    const t = await sessions.createSession("alice", "laptop", ["developer"]);
    advance(60_000);
    expect(sessions.verify(t.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/expired/) });
  });

  it("ends every session of a revoked device", async () => {
    const { sessions } = setup();
    const a = await sessions.createSession("alice", "laptop", ["developer"]);
    const b = await sessions.createSession("alice", "desktop", ["developer"]);
    expect(await sessions.revokeDevice("laptop", "stolen")).toEqual([a.id]);
    expect(sessions.verify(a.token).ok).toBe(false);
    expect(sessions.verify(b.token).ok).toBe(true);
  });
});

describe("sessions kept in the home", () => {
  it("outlive a restart with their expiry, revocation and scope; the file holds only hashes of tokens, mode 0600", async () => {
    const path = sessionsFile();
    const first = setup({ persistence: await openSessionFile(path) });
    const kept = await first.sessions.createSession("alice", "laptop", ["developer"]);
    const readOnly = await first.sessions.createSession("alice", "laptop", ["developer"], { readOnly: true });
    const revoked = await first.sessions.createSession("alice", "laptop", ["developer"]);
    const short = await first.sessions.createSession("alice", "laptop", ["developer"], { ttlMs: 10_000 });
    expect(await first.sessions.revoke(revoked.id, "laptop lost")).toBe(true);

    const text = readFileSync(path, "utf8");
    for (const s of [kept, readOnly, revoked, short]) {
      expect(text).not.toContain(s.token);
      expect(text).not.toContain(s.token.split(".")[2]);
    }
    expect(statSync(path).mode & 0o777).toBe(0o600);

    // The same node key, a new process: only what the file says.
    const again = setup({ persistence: await openSessionFile(path), node: first.node, now: first.now() });
    expect(again.sessions.verify(kept.token)).toMatchObject({ ok: true, session: { id: kept.id, readOnly: false } });
    expect(again.sessions.verify(readOnly.token)).toMatchObject({ ok: true, session: { readOnly: true } });
    expect(again.sessions.verify(revoked.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/revoked \(laptop lost\)/) });
    again.advance(10_000);
    expect(again.sessions.verify(short.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/expired/) });
    expect(again.sessions.list().map((s) => [s.id, s.state])).toEqual(expect.arrayContaining([[kept.id, "active"], [revoked.id, "revoked"], [short.id, "expired"]]));
  });

  it("refuses a token the node signed but whose hash it does not keep, and forgets sessions of another mesh", async () => {
    const path = sessionsFile();
    const first = setup({ persistence: await openSessionFile(path) });
    const s = await first.sessions.createSession("alice", "laptop", ["developer"]);
    const stored = JSON.parse(readFileSync(path, "utf8")) as { sessions: Array<{ tokenHash: string }> };
    stored.sessions[0]!.tokenHash = "A".repeat(43);
    writeFileSync(path, JSON.stringify(stored), { mode: 0o600 });
    const again = setup({ persistence: await openSessionFile(path), node: first.node, now: first.now() });
    expect(again.sessions.verify(s.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/has no such token/) });

    const elsewhere = new SessionManager({ signer: first.node, meshId: meshIdFor("b"), grantedRoles: () => new Set(["developer"]), persistence: await openSessionFile(path) });
    expect(elsewhere.list()).toEqual([]);
  });

  it("will not read a sessions file group or others may access, nor one that does not parse, naming the file and the fix", async () => {
    const path = sessionsFile();
    const first = setup({ persistence: await openSessionFile(path) });
    await first.sessions.createSession("alice", "laptop", ["developer"]);
    chmodSync(path, 0o664);
    await expect(openSessionFile(path)).rejects.toThrow(/sessions\.json: sessions file is accessible by group or others \(mode 664\); run chmod 600/);
    writeFileSync(path, "{\"v\":1,\"sessions\":[{\"id\":\"x\"}]}", { mode: 0o600 });
    chmodSync(path, 0o600);
    await expect(openSessionFile(path)).rejects.toThrow(/sessions\.json: sessions file: sessions\.0\.id: .*delete it to end every session/);
  });
});
