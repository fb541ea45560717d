import { randomBytes } from "node:crypto";
import {
  checkPairingProof,
  comparisonCode,
  ed25519,
  InviteError,
  issueTrustCert,
  joinerKeyProofBytes,
  pairingProof,
  publicKeyOfDeviceId,
  toBase64Url,
  type DeviceIdentity,
  type InviteBook,
  type IssuedInvite,
  type PairingTranscript,
  type SignedStatement,
} from "../../identity/index.js";
import type { PairingChannel } from "./channel.js";
import { PairingError } from "./errors.js";
import { toInviterSchema } from "./messages.js";
import { bytesField, receiveMessage, remoteError, sendError } from "./wire.js";

/** What the inviter's side needs. */
export interface InviterContext {
  /** This node's identity; it signs the joiner's certificate. */
  readonly identity: DeviceIdentity;
  /** Invites this node issued. */
  readonly inviteBook: InviteBook;
  /** The mesh statements to hand the newcomer (genesis, certificates, revocations). */
  readonly statements: () => Iterable<SignedStatement> | Promise<Iterable<SignedStatement>>;
  /** The transport-authenticated peer id of the other side, when the transport has one. */
  readonly remotePeer?: string;
  /** Lifetime of issued certificates, ms (default: no expiry). */
  readonly certificateTtlMs?: number;
  /** Per-message wait, ms (default 30 s). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /**
   * Makes the outcome durable (the certificate and what goes with it) before the
   * welcome is sent, so that a joiner never holds a certificate its inviter lost
   * in a crash. A failure here ends the pairing without a welcome.
   */
  readonly file?: (outcome: PairingOutcome) => Promise<void>;
}

/** What a successful pairing yields on the inviter's side. */
export interface PairingOutcome {
  readonly joiner: string;
  /** The certificate issued (add it to the mesh's statements). */
  readonly certificate: SignedStatement<"trust-cert">;
  readonly invite: IssuedInvite;
  /** Six digits to compare with the joiner's screen. */
  readonly comparisonCode: string;
}

/**
 * The inviter's side of pairing: looks the invite up, checks the joiner's
 * HMAC proof and device-key signature, consumes the invite, proves the
 * secret back and hands over a certificate at the invite's level plus the
 * mesh statements. Refusals are sent to the joiner and thrown (as
 * {@link InviteError} or {@link PairingError}).
 */
export async function handlePairingRequest(channel: PairingChannel, ctx: InviterContext): Promise<PairingOutcome> {
  const timeoutMs = ctx.timeoutMs ?? 30_000;
  const now = ctx.now ?? Date.now;
  try {
    const hello = await receiveMessage(channel, toInviterSchema, timeoutMs);
    if (hello.type === "error") throw remoteError(hello);
    if (hello.type !== "hello") throw new PairingError("PAIRING_PROTOCOL", `expected a hello, got ${hello.type}`);
    if (ctx.remotePeer !== undefined && ctx.remotePeer !== hello.joiner) {
      throw new PairingError("PAIRING_PEER_MISMATCH", `connection is from ${ctx.remotePeer} but hello claims ${hello.joiner}`);
    }
    const inviteId = bytesField(hello.inviteId);
    const invite = await ctx.inviteBook.check(inviteId, hello.meshId, now(), hello.joiner);
    const inviterNonce = new Uint8Array(randomBytes(32));
    await channel.send({ type: "challenge", inviter: ctx.identity.peerId, nonce: toBase64Url(inviterNonce) });
    const proof = await receiveMessage(channel, toInviterSchema, timeoutMs);
    if (proof.type === "error") throw remoteError(proof);
    if (proof.type !== "proof") throw new PairingError("PAIRING_PROTOCOL", `expected a proof, got ${proof.type}`);
    const transcript: PairingTranscript = {
      inviteId,
      meshId: invite.meshId,
      joiner: hello.joiner,
      inviter: ctx.identity.peerId,
      joinerNonce: bytesField(hello.nonce),
      inviterNonce,
      level: invite.level,
    };
    const joinerKey = publicKeyOfDeviceId(hello.joiner);
    if (joinerKey === undefined || !ed25519.verify(bytesField(proof.sig), joinerKeyProofBytes(transcript), joinerKey)) {
      throw new PairingError("PAIRING_JOINER_UNPROVEN", `the joiner did not prove it holds the key of ${hello.joiner}`);
    }
    const mac = bytesField(proof.mac);
    const code = comparisonCode(transcript);
    // The invite book keeps the code with the redeemed invite: the admin compares it later, maybe after a restart.
    const used = await ctx.inviteBook.redeem(inviteId, hello.meshId, hello.joiner, (secret) => checkPairingProof(secret, "joiner", transcript, mac), now(), code);
    const issuedAt = now();
    const certificate = issueTrustCert(ctx.identity, invite.meshId, hello.joiner, invite.level, {
      issuedAt,
      ...(ctx.certificateTtlMs === undefined ? {} : { expiresAt: issuedAt + ctx.certificateTtlMs }),
    });
    const outcome: PairingOutcome = { joiner: hello.joiner, certificate, invite: used, comparisonCode: code };
    await ctx.file?.(outcome);
    const statements = [...(await ctx.statements())].map((s) => toBase64Url(s.bytes));
    await channel.send({
      type: "welcome",
      mac: toBase64Url(pairingProof(used.secret, "inviter", transcript)),
      certificate: toBase64Url(certificate.bytes),
      statements,
    });
    return outcome;
  } catch (err) {
    if (err instanceof InviteError || (err instanceof PairingError && err.code !== "PAIRING_TIMEOUT")) await sendError(channel, err);
    throw err;
  }
}
