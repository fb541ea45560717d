import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { createMeshGenesis, deviceIdentityFromSeed, issueRevocation, issueTrustCert, type SignedStatement } from "../../identity/index.js";
import { Membership, statementItem } from "../../node/mesh/membership.js";
import { StatementSet, type SetItem } from "../../node/mesh/statement-set.js";
import { policyTextHash } from "../../src/security/index.js";
import { encode } from "cborg";
import { createStatementsCodec } from "../../protocols/statements/index.js";
import { MalformedFrameError } from "../../protocols/framing/index.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { WriteBatcher } from "../../src/storage/write-batcher.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const [founder, alice, bob, mallory] = [1, 2, 3, 4].map((n) => deviceIdentityFromSeed(new Uint8Array(32).fill(n))) as [
  ReturnType<typeof deviceIdentityFromSeed>,
  ReturnType<typeof deviceIdentityFromSeed>,
  ReturnType<typeof deviceIdentityFromSeed>,
  ReturnType<typeof deviceIdentityFromSeed>,
];
const genesis = createMeshGenesis(founder, "home", 1_700_000_000_000);
const meshId = genesis.body.meshId;
const other = createMeshGenesis(mallory, "elsewhere", 1_700_000_000_000);

async function openSet(): Promise<{ db: Database; set: StatementSet; membership: Membership; dir: string }> {
  const dir = tempDir("cc-set-");
  const db = await openDatabase(dir.path);
  const batcher = new WriteBatcher(db);
  const membership = await Membership.openStored({ db, write: (ops) => batcher.write(ops), identity: alice, pinnedMeshId: () => meshId });
  const set = membership.set;
  cleanups.push(() => dir.remove());
  cleanups.push(async () => {
    membership.close();
    await batcher.drain();
    await db.close();
  });
  return { db, set, membership, dir: dir.path };
}

/** A copy of `item` with one byte of its content changed: what a member that edits an item sends. */
function tampered(item: SetItem): SetItem {
  const bytes = new Uint8Array(item.bytes);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
  return { ...item, bytes };
}

describe("the set of signed items", () => {
  it("keeps valid statements and texts, refuses forged, edited, mislabelled and foreign ones, and never replaces one", async () => {
    const { set, membership } = await openSet();
    const cert = issueTrustCert(founder, meshId, alice.peerId, "trusted");
    const text = "remote:\n  allow: true\n";
    const { added, refused } = await set.add([statementItem(genesis), statementItem(cert), { id: policyTextHash(text), kind: "text", bytes: Buffer.from(text) }]);
    expect(added).toHaveLength(3);
    expect(refused).toEqual([]);
    expect(membership.levelOf(alice.peerId)).toBe("trusted");

    const edited = await set.add([tampered(statementItem(issueTrustCert(founder, meshId, bob.peerId, "trusted"))), tampered({ id: policyTextHash("x: 1"), kind: "text", bytes: Buffer.from("x: 1") })]);
    expect(edited.added).toEqual([]);
    expect(edited.refused.map((r) => r.offence)).toEqual([true, true]);
    // A valid item under another's id, a text under the wrong hash, another mesh's statement.
    const wrongId = await set.add([{ ...statementItem(issueTrustCert(founder, meshId, bob.peerId, "verified")), id: cert.id.replace(/^./, "0") }]);
    expect(wrongId.refused[0]?.offence).toBe(true);
    const foreign = await set.add([statementItem(other), statementItem(issueTrustCert(mallory, other.body.meshId, bob.peerId, "trusted"))]);
    expect(foreign.refused.map((r) => [r.offence, r.reason])).toEqual([
      [false, expect.stringContaining("another mesh")],
      [false, expect.stringContaining("another mesh")],
    ]);
    // The same id offered again with other bytes changes nothing.
    const digest = set.digest();
    await set.add([{ ...statementItem(cert), bytes: statementItem(issueTrustCert(founder, meshId, alice.peerId, "verified")).bytes }]);
    expect(set.digest()).toBe(digest);
    expect(membership.levelOf(alice.peerId)).toBe("trusted");
  });

  it("reports a forged item even when the same batch holds valid new items", async () => {
    const { set } = await openSet();
    const forged = tampered(statementItem(issueTrustCert(founder, meshId, bob.peerId, "trusted")));
    const { added, refused } = await set.add([statementItem(genesis), statementItem(issueTrustCert(founder, meshId, alice.peerId, "trusted")), forged]);
    expect(added).toHaveLength(2);
    expect(refused.map((r) => [r.id, r.offence])).toEqual([[forged.id, true]]);
    expect(set.has(forged.id)).toBe(false);
  });

  it("takes a revocation whose issuer's certificate comes in the same batch, and applies it at once", async () => {
    const { set, membership } = await openSet();
    await set.add([statementItem(genesis), statementItem(issueTrustCert(founder, meshId, alice.peerId, "trusted"))]);
    const bobCert = issueTrustCert(founder, meshId, bob.peerId, "trusted");
    const malloryCert = issueTrustCert(bob, meshId, mallory.peerId, "verified");
    const revoke = issueRevocation(bob, mallory.peerId, "lost laptop");
    // Order matters only for admission: bob is unknown until his certificate is held.
    const { added, refused } = await set.add([statementItem(revoke), statementItem(malloryCert), statementItem(bobCert)]);
    expect(added).toHaveLength(3);
    expect(refused).toEqual([]);
    expect(membership.isRevoked(mallory.peerId)).toBe(true);
    expect(membership.isMember(mallory.peerId)).toBe(false);
  });

  it("reads back what it holds after a restart, and skips an item edited on disk", async () => {
    const dir = tempDir("cc-set-restart-");
    cleanups.push(() => dir.remove());
    let db = await openDatabase(dir.path);
    let set = await StatementSet.open({ db, write: (ops) => db.batch(ops) });
    const cert = issueTrustCert(founder, meshId, alice.peerId, "trusted");
    await set.add([statementItem(genesis), statementItem(cert)]);
    await db.put(`signed:statement:${cert.id}`, tampered(statementItem(cert)).bytes);
    await db.close();
    db = await openDatabase(dir.path);
    set = await StatementSet.open({ db, write: (ops) => db.batch(ops) });
    expect(set.ids()).toEqual([genesis.id]);
    await db.close();
  });

  it("property: sets fed honest and forged items in any order, in any grouping, hold the same items, none forged", async () => {
    const honest: SignedStatement[] = [
      genesis,
      issueTrustCert(founder, meshId, alice.peerId, "trusted"),
      issueTrustCert(founder, meshId, bob.peerId, "trusted"),
      issueTrustCert(bob, meshId, mallory.peerId, "verified"),
      issueRevocation(founder, mallory.peerId, "compromised"),
      issueRevocation(bob, alice.peerId, "bob may not revoke alice's standing, but the statement is valid"),
    ];
    const texts = ["remote:\n  allow: true\n", "skills:\n  shell-exec:\n    dangerous: true\n"].map((t): SetItem => ({ id: policyTextHash(t), kind: "text", bytes: Buffer.from(t) }));
    const good: SetItem[] = [...honest.map(statementItem), ...texts];
    const forged: SetItem[] = [
      ...good.map(tampered),
      { id: randomBytes(32).toString("hex"), kind: "text", bytes: Buffer.from("deniedSkills: []") },
      statementItem(other),
      { ...statementItem(honest[2]!), id: honest[1]!.id },
    ];
    const pool = [...good, ...forged];
    const delivery = fc.array(fc.array(fc.integer({ min: 0, max: pool.length - 1 }), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 });
    const sets = await Promise.all([0, 1, 2].map(() => openSet()));
    await fc.assert(
      fc.asyncProperty(fc.array(delivery, { minLength: 3, maxLength: 3 }), async (plans) => {
        for (const [i, plan] of plans.entries()) {
          const { set } = sets[i]!;
          for (const batch of plan) await set.add(batch.map((k) => pool[k]!));
          // Whatever came first, everything honest arrives in the end (reconciliation).
          await set.add([...good].reverse());
        }
        const [first, ...rest] = sets.map((s) => s.set);
        for (const s of rest) expect(s.ids()).toEqual(first!.ids());
        expect(first!.ids()).toEqual(good.map((g) => g.id).sort());
        for (const { set } of sets) for (const g of good) expect(Buffer.from(set.get(g.id)!.bytes).equals(Buffer.from(g.bytes))).toBe(true);
        const verdicts = sets.map((s) => [alice, bob, mallory].map((d) => `${s.membership.levelOf(d.peerId)}/${s.membership.isRevoked(d.peerId)}`).join());
        expect(new Set(verdicts).size).toBe(1);
      }),
      { numRuns: 40 },
    );
  });
});

describe("statements protocol codec", () => {
  const codec = createStatementsCodec();
  it("round-trips every message kind and refuses malformed ones", () => {
    const id = "ab".repeat(32);
    for (const m of [
      { t: "have" as const, count: 3, digest: id },
      { t: "ids" as const, ids: [id], last: true },
      { t: "items" as const, items: [{ id, kind: "text" as const, bytes: new Uint8Array([1]) }] },
    ]) {
      expect(codec.decode(codec.encode(m))).toEqual(m);
    }
    for (const bad of [
      { t: "have", count: -1, digest: id },
      { t: "ids", ids: ["zz"], last: true },
      { t: "items", items: [{ id, kind: "other", bytes: new Uint8Array([1]) }] },
      { t: "items", items: [{ id, kind: "text", bytes: new Uint8Array(64 * 1024 + 1) }] },
      { t: "delete", id },
    ]) {
      expect(() => codec.decode(encode([1, bad]))).toThrow(MalformedFrameError);
    }
  });
});
