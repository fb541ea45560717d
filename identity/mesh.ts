import { createHash, randomBytes } from "node:crypto";
import { encodeCanonical } from "./canonical.js";
import { toBase32, utf8 } from "./bytes.js";
import { signStatement, type SignedStatement, type StatementSigner } from "./statement.js";
import type { MeshGenesisBody } from "./statement-kinds.js";

/**
 * A mesh id is self-certifying: "mesh-" + base32 of the first 128 bits of
 * SHA-256 over the founder, name and creation time. Anyone can sign a genesis
 * naming any mesh id, but only the founder's key can sign one whose id
 * matches, so a mesh id pins its founder.
 */
export function deriveMeshId(founder: string, name: string, createdAt: number): string {
  const digest = createHash("sha256")
    .update(utf8("coderclaw-mesh-id-v1\0"))
    .update(encodeCanonical({ founder, name, createdAt }))
    .digest();
  return `mesh-${toBase32(digest.subarray(0, 16))}`;
}

/** True when a genesis body's mesh id is the one its founder, name and time derive. */
export function isGenesisConsistent(body: MeshGenesisBody): boolean {
  return deriveMeshId(body.founder, body.name, body.createdAt) === body.meshId;
}

/** Founds a mesh: the signed genesis statement of `founder`. */
export function createMeshGenesis(founder: StatementSigner, name: string, createdAt: number = Date.now()): SignedStatement<"mesh-genesis"> {
  return signStatement(founder, "mesh-genesis", {
    meshId: deriveMeshId(founder.peerId, name, createdAt),
    founder: founder.peerId,
    name,
    createdAt,
  });
}

/** Options of {@link issueTrustCert}. */
export interface IssueCertOptions {
  readonly issuedAt?: number;
  readonly expiresAt?: number;
}

/** Signs a trust certificate for `subject` at `level` in `meshId`, with a fresh nonce. */
export function issueTrustCert(
  issuer: StatementSigner,
  meshId: string,
  subject: string,
  level: "verified" | "trusted",
  options: IssueCertOptions = {},
): SignedStatement<"trust-cert"> {
  return signStatement(issuer, "trust-cert", {
    issuer: issuer.peerId,
    subject,
    level,
    meshId,
    issuedAt: options.issuedAt ?? Date.now(),
    ...(options.expiresAt === undefined ? {} : { expiresAt: options.expiresAt }),
    nonce: new Uint8Array(randomBytes(16)),
  });
}

/** Signs a revocation of a device id (permanent) or a certificate id (that certificate only). */
export function issueRevocation(issuer: StatementSigner, target: string, reason = "", issuedAt: number = Date.now()): SignedStatement<"revocation"> {
  return signStatement(issuer, "revocation", { issuer: issuer.peerId, target, reason, issuedAt });
}
