import { describe, expect, test } from "vitest";
import fc from "fast-check";
import {
  createMeshGenesis,
  evaluateTrust,
  issueRevocation,
  issueTrustCert,
  meetsTrustLevel,
  compareTrustLevels,
  signStatement,
  TrustStore,
  type DeviceIdentity,
  type SignedStatement,
} from "../../identity/index.js";
import { identities } from "./helpers.js";

const people = identities(8);
const [founder, alice, bob, carol, dave] = people as [DeviceIdentity, DeviceIdentity, DeviceIdentity, DeviceIdentity, DeviceIdentity];
const T0 = 1_700_000_000_000;
const genesis = createMeshGenesis(founder, "home", T0);
const meshId = genesis.body.meshId;
const NOW = T0 + 1_000_000;

function cert(issuer: DeviceIdentity, subject: DeviceIdentity, level: "verified" | "trusted", expiresAt?: number, issuedAt = T0) {
  return issueTrustCert(issuer, meshId, subject.peerId, level, expiresAt === undefined ? { issuedAt } : { issuedAt, expiresAt });
}

function storeOf(statements: SignedStatement[], policy = {}): TrustStore {
  const store = new TrustStore(meshId, policy);
  store.addAll([genesis, ...statements]);
  return store;
}

describe("trust levels", () => {
  test("order: untrusted < verified < trusted", () => {
    expect(compareTrustLevels("untrusted", "verified")).toBeLessThan(0);
    expect(compareTrustLevels("trusted", "verified")).toBeGreaterThan(0);
    expect(meetsTrustLevel("trusted", "verified")).toBe(true);
    expect(meetsTrustLevel("verified", "trusted")).toBe(false);
  });

  test("founder is trusted; strangers are untrusted", () => {
    const store = storeOf([]);
    expect(store.level(founder.peerId, NOW)).toBe("trusted");
    expect(store.level(alice.peerId, NOW)).toBe("untrusted");
    expect(new TrustStore(meshId).level(founder.peerId, NOW)).toBe("untrusted");
  });

  test("trusted may issue trusted and verified; chains of trusted carry trust", () => {
    const store = storeOf([cert(founder, alice, "trusted"), cert(alice, bob, "trusted"), cert(bob, carol, "verified")]);
    expect(store.trustOf(bob.peerId, NOW)).toMatchObject({ level: "trusted", vouchedBy: alice.peerId, depth: 2 });
    expect(store.trustOf(carol.peerId, NOW)).toMatchObject({ level: "verified", vouchedBy: bob.peerId, depth: 0 });
  });

  test("verified vouching is limited by the policy's depth", () => {
    const chain = [cert(founder, alice, "verified"), cert(alice, bob, "verified"), cert(bob, carol, "verified")];
    const byDefault = storeOf(chain);
    expect(byDefault.level(alice.peerId, NOW)).toBe("verified");
    expect(byDefault.trustOf(bob.peerId, NOW)).toMatchObject({ level: "verified", depth: 1 });
    expect(byDefault.level(carol.peerId, NOW)).toBe("untrusted");
    expect(storeOf(chain, { transitiveDepth: 0 }).level(bob.peerId, NOW)).toBe("untrusted");
    expect(storeOf(chain, { transitiveDepth: 2 }).level(carol.peerId, NOW)).toBe("verified");
  });

  test("a certificate above its issuer's level counts for nothing", () => {
    const store = storeOf([cert(founder, alice, "verified"), cert(alice, bob, "trusted")]);
    expect(store.level(bob.peerId, NOW)).toBe("untrusted");
  });

  test("best chain wins: trusted over verified, then fewer hops", () => {
    const store = storeOf([cert(founder, alice, "trusted"), cert(founder, bob, "verified"), cert(alice, bob, "trusted")]);
    expect(store.trustOf(bob.peerId, NOW)).toMatchObject({ level: "trusted", vouchedBy: alice.peerId });
  });

  test("expiry and future-dated certificates", () => {
    const store = storeOf([cert(founder, alice, "trusted", T0 + 10), cert(alice, bob, "trusted"), cert(founder, carol, "trusted", undefined, NOW + 3_600_000)]);
    expect(store.level(bob.peerId, T0 + 5)).toBe("trusted");
    expect(store.level(alice.peerId, T0 + 10)).toBe("untrusted");
    expect(store.level(bob.peerId, NOW)).toBe("untrusted");
    expect(store.level(carol.peerId, NOW)).toBe("untrusted");
    expect(store.level(carol.peerId, NOW + 3_600_000 - 60_000)).toBe("trusted");
    expect(store.level(bob.peerId, T0 + 5)).toBe("trusted");
  });

  test("cycles without a founder link confer nothing", () => {
    const store = storeOf([cert(alice, bob, "trusted"), cert(bob, alice, "trusted"), cert(bob, carol, "verified")]);
    for (const p of [alice, bob, carol]) expect(store.level(p.peerId, NOW)).toBe("untrusted");
    store.add(cert(founder, bob, "trusted"));
    expect(store.level(alice.peerId, NOW)).toBe("trusted");
    expect(store.trustOf(alice.peerId, NOW).depth).toBe(2);
  });

  test("a long chain of 500 trusted links", () => {
    const many = [founder, ...identities(40).slice(8)];
    const statements: SignedStatement[] = [];
    for (let i = 0; i < 500; i += 1) statements.push(cert(many[i % many.length]!, many[(i + 1) % many.length]!, "trusted"));
    const store = storeOf(statements);
    expect(store.trustOf(many[many.length - 1]!.peerId, NOW)).toMatchObject({ level: "trusted", depth: many.length - 1 });
  });

  test("statements of other meshes and forged geneses do not count", () => {
    const other = createMeshGenesis(alice, "other", T0);
    const forged = signStatement(alice, "mesh-genesis", { meshId, founder: alice.peerId, name: "home", createdAt: T0 });
    const store = new TrustStore(meshId);
    store.addAll([forged, other, issueTrustCert(alice, other.body.meshId, bob.peerId, "trusted")]);
    expect(store.founder).toBeUndefined();
    expect(store.level(alice.peerId, NOW)).toBe("untrusted");
    expect(store.level(bob.peerId, NOW)).toBe("untrusted");
  });
});

describe("revocation", () => {
  test("device revocation is permanent: a later re-sign does not restore", () => {
    const store = storeOf([cert(founder, alice, "trusted"), cert(alice, bob, "trusted")]);
    store.add(issueRevocation(founder, alice.peerId, "stolen", NOW));
    expect(store.trustOf(alice.peerId, NOW)).toMatchObject({ level: "untrusted", revoked: true });
    expect(store.level(bob.peerId, NOW)).toBe("untrusted");
    store.add(cert(founder, alice, "trusted", undefined, NOW + 1));
    expect(store.level(alice.peerId, NOW + 2)).toBe("untrusted");
    store.add(cert(founder, bob, "verified", undefined, NOW + 1));
    expect(store.level(bob.peerId, NOW + 2)).toBe("verified");
  });

  test("certificate revocation kills that certificate only; a fresh one re-admits", () => {
    const first = cert(founder, alice, "trusted");
    const store = storeOf([first]);
    store.add(issueRevocation(founder, first.id, "rotate", NOW));
    expect(store.level(alice.peerId, NOW)).toBe("untrusted");
    expect(store.isCertRevoked(first.id)).toBe(true);
    store.add(cert(founder, alice, "verified", undefined, NOW));
    expect(store.level(alice.peerId, NOW)).toBe("verified");
  });

  test("who may revoke", () => {
    const aliceCert = cert(founder, alice, "trusted");
    const bobCert = cert(founder, bob, "verified");
    const carolCert = cert(alice, carol, "verified");
    const base = [aliceCert, bobCert, carolCert, cert(founder, dave, "verified")];
    const verdict = (r: SignedStatement) => storeOf([...base, r]);
    expect(verdict(issueRevocation(bob, dave.peerId)).isRevoked(dave.peerId)).toBe(false);
    expect(verdict(issueRevocation(alice, dave.peerId)).isRevoked(dave.peerId)).toBe(true);
    expect(verdict(issueRevocation(dave, dave.peerId)).isRevoked(dave.peerId)).toBe(true);
    expect(verdict(issueRevocation(carol, carolCert.id)).isCertRevoked(carolCert.id)).toBe(true);
    expect(verdict(issueRevocation(bob, carolCert.id)).isCertRevoked(carolCert.id)).toBe(false);
    expect(verdict(issueRevocation(alice, founder.peerId)).level(founder.peerId, NOW)).toBe("trusted");
    const ended = verdict(issueRevocation(founder, founder.peerId));
    expect(ended.level(founder.peerId, NOW)).toBe("untrusted");
    expect(ended.level(alice.peerId, NOW)).toBe("untrusted");
  });

  test("revocation authority ignores expiry, so revocations never lapse", () => {
    const store = storeOf([cert(founder, alice, "trusted", T0 + 10), cert(founder, bob, "trusted"), issueRevocation(alice, bob.peerId, "", T0 + 5)]);
    expect(store.isRevoked(bob.peerId)).toBe(true);
    expect(store.level(bob.peerId, NOW)).toBe("untrusted");
  });
});

// A deliberately naive evaluator: Bellman-Ford to a fixpoint over all edges.
function reference(statements: SignedStatement[], now: number, depthLimit = 1): Map<string, string> {
  const g = statements.find((s): s is SignedStatement<"mesh-genesis"> => s.kind === "mesh-genesis" && s.body.meshId === meshId);
  const out = new Map<string, string>();
  if (g === undefined) return out;
  const root = g.body.founder;
  const certs = statements.filter((s): s is SignedStatement<"trust-cert"> => s.kind === "trust-cert" && s.body.meshId === meshId);
  const revs = statements.filter((s): s is SignedStatement<"revocation"> => s.kind === "revocation");
  const auth = new Set([root]);
  for (let changed = true; changed; ) {
    changed = false;
    for (const c of certs) if (c.body.level === "trusted" && auth.has(c.body.issuer) && !auth.has(c.body.subject)) (auth.add(c.body.subject), (changed = true));
  }
  const rd = new Set<string>();
  const rc = new Set<string>();
  for (const r of revs) {
    const c = certs.find((x) => x.id === r.body.target);
    if (c !== undefined) {
      if ([c.body.issuer, c.body.subject].includes(r.issuer) || auth.has(r.issuer)) rc.add(c.id);
    } else if (r.body.target === root ? r.issuer === root : r.issuer === r.body.target || auth.has(r.issuer)) rd.add(r.body.target);
  }
  if (rd.has(root)) return out;
  const best = new Map<string, [number, number, string]>([[root, [2, 0, ""]]]);
  const isBetter = (x: [number, number, string], y: [number, number, string] | undefined) =>
    y === undefined || x[0] > y[0] || (x[0] === y[0] && (x[1] < y[1] || (x[1] === y[1] && x[2] < y[2])));
  for (let changed = true; changed; ) {
    changed = false;
    for (const c of certs) {
      const { issuer, subject, level, issuedAt, expiresAt } = c.body;
      if (subject === root || rc.has(c.id) || rd.has(issuer) || rd.has(subject)) continue;
      if (now < issuedAt - 300_000 || (expiresAt !== undefined && now >= expiresAt)) continue;
      const from = best.get(issuer);
      if (from === undefined) continue;
      let cand: [number, number, string] | undefined;
      if (from[0] === 2) cand = level === "trusted" ? [2, from[1] + 1, c.id] : [1, 0, c.id];
      else if (level === "verified" && from[1] + 1 <= depthLimit) cand = [1, from[1] + 1, c.id];
      if (cand !== undefined && isBetter(cand, best.get(subject))) (best.set(subject, cand), (changed = true));
    }
  }
  for (const [id, [rank, depth, certId]] of best) out.set(id, `${rank}/${depth}/${certId}`);
  return out;
}

function summary(store: TrustStore, now: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of store.devices(now)) {
    if (d.level !== "untrusted") out.set(d.deviceId, `${d.level === "trusted" ? 2 : 1}/${d.depth}/${d.certId ?? ""}`);
  }
  return out;
}

const devicesArb = fc.integer({ min: 0, max: people.length - 1 });
const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("cert" as const), from: devicesArb, to: devicesArb, trusted: fc.boolean(), start: fc.integer({ min: 0, max: 20 }), life: fc.option(fc.integer({ min: 1, max: 20 })) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("revoke-device" as const), from: devicesArb, to: devicesArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("revoke-cert" as const), from: devicesArb, cert: fc.nat() }) },
);
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

const MIN = 60_000;
function build(ops: Op[]): SignedStatement[] {
  const out: SignedStatement[] = [genesis];
  const certs: SignedStatement[] = [];
  for (const op of ops) {
    const from = people[op.from]!;
    if (op.op === "cert") {
      const issuedAt = T0 + op.start * 10 * MIN;
      const c = cert(from, people[op.to]!, op.trusted ? "trusted" : "verified", op.life === null ? undefined : issuedAt + op.life * 10 * MIN, issuedAt);
      certs.push(c);
      out.push(c);
    } else if (op.op === "revoke-device") {
      out.push(issueRevocation(from, people[op.to]!.peerId, "", T0));
    } else if (certs.length > 0) {
      out.push(issueRevocation(from, certs[op.cert % certs.length]!.id, "", T0));
    }
  }
  return out;
}

const opsArb = fc.array(opArb, { minLength: 1, maxLength: 30 });
const timesArb = fc.array(fc.integer({ min: 0, max: 40 }).map((t) => T0 + t * 5 * MIN), { minLength: 1, maxLength: 4 });

describe("trust evaluation properties", () => {
  test("any delivery order gives one verdict, equal to the naive reference", () => {
    fc.assert(
      fc.property(opsArb, fc.infiniteStream(fc.nat()), timesArb, (ops, randoms, times) => {
        const statements = build(ops);
        const shuffled = [...statements];
        for (let i = shuffled.length - 1; i > 0; i -= 1) {
          const j = randoms.next().value % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        for (const now of times) {
          const expected = reference(statements, now);
          expect(evaluateTrust(meshId, statements, now)).toEqual(evaluateTrust(meshId, shuffled, now));
          const fresh = new TrustStore(meshId);
          fresh.addAll(shuffled);
          expect(summary(fresh, now)).toEqual(expected);
        }
      }),
      { numRuns: 150 },
    );
  });

  test("an incremental store with lookups between every add matches a fresh one", () => {
    fc.assert(
      fc.property(opsArb, timesArb, (ops, times) => {
        const statements = build(ops);
        const incremental = new TrustStore(meshId);
        for (const [i, s] of statements.entries()) {
          incremental.add(s);
          incremental.level(people[i % people.length]!.peerId, times[i % times.length]);
        }
        for (const now of times) expect(summary(incremental, now)).toEqual(reference(statements, now));
      }),
      { numRuns: 150 },
    );
  });

  test("revocations on both sides of a partition converge on the union", () => {
    fc.assert(
      fc.property(opsArb, opsArb, opsArb, timesArb, (common, left, right, times) => {
        const shared = build(common);
        const leftOnly = build(left).slice(1);
        const rightOnly = build(right).slice(1);
        const l = new TrustStore(meshId);
        const r = new TrustStore(meshId);
        l.addAll([...shared, ...leftOnly]);
        r.addAll([...rightOnly, ...shared]);
        l.addAll(r.statements());
        r.addAll(l.statements());
        for (const now of times) {
          expect(l.devices(now)).toEqual(r.devices(now));
          for (const s of [...leftOnly, ...rightOnly]) {
            if (s.kind === "revocation" && (l.isRevoked(s.body.target) || l.isCertRevoked(s.body.target))) {
              expect(r.isRevoked(s.body.target) || r.isCertRevoked(s.body.target)).toBe(true);
            }
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  test("once in force, a device revocation survives any later statements", () => {
    fc.assert(
      fc.property(opsArb, opsArb, (before, after) => {
        const store = new TrustStore(meshId);
        store.addAll(build(before));
        const revokedBefore = people.filter((p) => store.isRevoked(p.peerId));
        store.addAll(build(after));
        for (const p of revokedBefore) {
          expect(store.isRevoked(p.peerId)).toBe(true);
          expect(store.level(p.peerId, NOW)).toBe("untrusted");
        }
      }),
      { numRuns: 60 },
    );
  });
});
