import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  createMeshGenesis,
  decodeStatement,
  deviceKeyPath,
  encodeCanonical,
  IdentityError,
  InviteBook,
  issueRevocation,
  issueTrustCert,
  loadOrCreateDeviceIdentity,
  memoryInviteStorage,
  TrustStore,
} from "../../identity/index.js";
import { identity } from "./helpers.js";

const founder = identity(1);
const insider = identity(2);
const attacker = identity(3);
const victim = identity(4);
const T0 = 1_700_000_000_000;
const NOW = T0 + 60_000;
const genesis = createMeshGenesis(founder, "home", T0);
const meshId = genesis.body.meshId;
const otherMeshId = createMeshGenesis(founder, "work", T0).body.meshId;

async function outcome(attack: () => unknown): Promise<string> {
  try {
    const result = await attack();
    return typeof result === "string" ? result : "accepted";
  } catch (err) {
    if (err instanceof IdentityError) return err.code;
    throw err;
  }
}

function levelOf(deviceId: string, ...statements: Parameters<TrustStore["add"]>[0][]): string {
  const store = new TrustStore(meshId);
  store.addAll([genesis, ...statements]);
  return store.level(deviceId, NOW);
}

async function bookWith(meshOf = meshId) {
  const book = await InviteBook.open(memoryInviteStorage());
  const invite = await book.create({ meshId: meshOf, inviter: founder.peerId, addrs: [], level: "verified", expiresAt: NOW + 60_000 }, T0);
  return { book, invite };
}

// Each row: the attack, and what must come of it.
const ATTACKS: [string, () => Promise<string> | string, string][] = [
  [
    "forged signature on a certificate",
    () => {
      const real = issueTrustCert(founder, meshId, attacker.peerId, "trusted", { issuedAt: T0 });
      return outcome(() => decodeStatement(encodeCanonical({ v: 1, kind: real.kind, body: real.body, issuer: real.issuer, sig: attacker.sign(real.bytes) })));
    },
    "BAD_SIGNATURE",
  ],
  [
    "certificate claiming the founder as issuer, signed by the attacker",
    () => outcome(() => decodeStatement(encodeCanonical({ v: 1, kind: "trust-cert", body: issueTrustCert(attacker, meshId, attacker.peerId, "trusted").body, issuer: founder.peerId, sig: new Uint8Array(64) }))),
    "BAD_SIGNATURE",
  ],
  [
    "issuer above its level (verified issues trusted)",
    () => levelOf(attacker.peerId, issueTrustCert(founder, meshId, insider.peerId, "verified", { issuedAt: T0 }), issueTrustCert(insider, meshId, attacker.peerId, "trusted", { issuedAt: T0 })),
    "untrusted",
  ],
  [
    "self-issued certificate",
    () => levelOf(attacker.peerId, issueTrustCert(attacker, meshId, attacker.peerId, "trusted", { issuedAt: T0 })),
    "untrusted",
  ],
  [
    "expired certificate",
    () => levelOf(attacker.peerId, issueTrustCert(founder, meshId, attacker.peerId, "trusted", { issuedAt: T0, expiresAt: NOW - 1 })),
    "untrusted",
  ],
  [
    "revoked issuer keeps vouching",
    () =>
      levelOf(
        attacker.peerId,
        issueTrustCert(founder, meshId, insider.peerId, "trusted", { issuedAt: T0 }),
        issueRevocation(founder, insider.peerId, "compromised", T0 + 1),
        issueTrustCert(insider, meshId, attacker.peerId, "trusted", { issuedAt: T0 + 2 }),
      ),
    "untrusted",
  ],
  [
    "revoked device re-certified by a trusted friend",
    () =>
      levelOf(
        attacker.peerId,
        issueTrustCert(founder, meshId, insider.peerId, "trusted", { issuedAt: T0 }),
        issueRevocation(founder, attacker.peerId, "", T0),
        issueTrustCert(insider, meshId, attacker.peerId, "trusted", { issuedAt: T0 + 5 }),
      ),
    "untrusted",
  ],
  [
    "untrusted device revokes a member",
    () => levelOf(victim.peerId, issueTrustCert(founder, meshId, victim.peerId, "trusted", { issuedAt: T0 }), issueRevocation(attacker, victim.peerId, "", T0)),
    "trusted",
  ],
  [
    "certificate of another mesh replayed here",
    () => levelOf(attacker.peerId, issueTrustCert(founder, otherMeshId, attacker.peerId, "trusted", { issuedAt: T0 })),
    "untrusted",
  ],
  [
    "replayed invite",
    async () => {
      const { book, invite } = await bookWith();
      await book.redeem(invite.id, meshId, insider.peerId, () => true, NOW);
      return outcome(() => book.redeem(invite.id, meshId, attacker.peerId, () => true, NOW));
    },
    "INVITE_REPLAYED",
  ],
  [
    "invite of another mesh",
    async () => {
      const { book, invite } = await bookWith(otherMeshId);
      return outcome(() => book.redeem(invite.id, meshId, attacker.peerId, () => true, NOW));
    },
    "INVITE_OTHER_MESH",
  ],
  [
    "guessing an invite secret",
    async () => {
      const { book, invite } = await bookWith();
      for (let i = 0; i < 5; i += 1) await outcome(() => book.redeem(invite.id, meshId, attacker.peerId, () => false, NOW));
      return outcome(() => book.redeem(invite.id, meshId, attacker.peerId, () => true, NOW));
    },
    "INVITE_RATE_LIMITED",
  ],
  [
    "key file readable by others",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "cc-attack-"));
      try {
        await loadOrCreateDeviceIdentity(dir);
        await chmod(deviceKeyPath(dir), 0o644);
        return await outcome(() => loadOrCreateDeviceIdentity(dir));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    "KEY_PERMISSIONS",
  ],
];

describe("attack table", () => {
  test.each(ATTACKS)("%s", async (_, attack, expected) => {
    expect(await attack()).toBe(expected);
  });
});
