/**
 * `coderclaw/identity`: device keys, signatures, signed statements, trust
 * levels, revocation and invites. Pure Node; nothing here touches the network.
 *
 * @example Found a mesh, vouch for a device, and ask its trust level
 * ```ts
 * import { randomBytes } from "node:crypto";
 * import { createMeshGenesis, deviceIdentityFromSeed, issueTrustCert, TrustStore } from "coderclaw/identity";
 *
 * const founder = deviceIdentityFromSeed(randomBytes(32));
 * const laptop = deviceIdentityFromSeed(randomBytes(32));
 * const genesis = createMeshGenesis(founder, "home");
 * const trust = new TrustStore(genesis.body.meshId);
 * trust.addAll([genesis, issueTrustCert(founder, genesis.body.meshId, laptop.peerId, "trusted")]);
 * console.log(trust.level(laptop.peerId)); // "trusted"
 * ```
 *
 * @packageDocumentation
 */
export { IdentityError, KeyFileError, DecodeError, InviteError } from "./errors.js";
export type { KeyFileErrorCode, DecodeErrorCode, InviteErrorCode } from "./errors.js";
export { type Ed25519, ed25519, nodeEd25519, nobleEd25519 } from "./ed25519.js";
export { type DeviceIdentity, type Libp2pPrivateKey, loadOrCreateDeviceIdentity, deviceIdentityFromSeed, deviceKeyPath } from "./device.js";
export { DEVICE_ID_PATTERN, isDeviceId, publicKeyOfDeviceId, deviceIdOfPublicKey, fingerprintOfPublicKey } from "./device-id.js";
export { type DecodeLimits, STATEMENT_LIMITS, encodeCanonical, decodeCanonical } from "./canonical.js";
export {
  type StatementBodies,
  type StatementKind,
  type StatementKindSpec,
  type MeshGenesisBody,
  type TrustCertBody,
  type RevocationBody,
  registerStatementKind,
  statementKindSpec,
  deviceIdSchema,
  statementIdSchema,
  meshIdSchema,
  timestampSchema,
  grantableLevelSchema,
} from "./statement-kinds.js";
export { type SignedStatement, type StatementSigner, STATEMENT_VERSION, signStatement, decodeStatement } from "./statement.js";
export { type IssueCertOptions, deriveMeshId, isGenesisConsistent, createMeshGenesis, issueTrustCert, issueRevocation } from "./mesh.js";
export {
  type TrustLevel,
  type TrustPolicy,
  type DeviceTrust,
  DEFAULT_TRUST_POLICY,
  compareTrustLevels,
  meetsTrustLevel,
} from "./trust-level.js";
export { TrustStore, evaluateTrust } from "./trust-store.js";
export { type Invite, INVITE_PREFIX, createInvite, encodeInvite, parseInvite } from "./invite.js";
export {
  type IssuedInvite,
  type InviteRefusal,
  type InviteBookLimits,
  type InviteBookState,
  type InviteStorage,
  DEFAULT_INVITE_LIMITS,
  InviteBook,
  jsonFileInviteStorage,
  memoryInviteStorage,
} from "./invite-book.js";
export { renderQr } from "./qr.js";
export {
  type PairingTranscript,
  transcriptBytes,
  pairingProof,
  checkPairingProof,
  joinerKeyProofBytes,
  comparisonCode,
} from "./pairing-proof.js";
export { type AtomicWriteOptions, writeFileAtomic } from "./atomic-file.js";
export { toBase64Url, fromBase64Url, toHex, fromHex } from "./bytes.js";
