import { randomBytes } from "node:crypto";
import {
  checkPairingProof,
  comparisonCode,
  decodeStatement,
  DecodeError,
  joinerKeyProofBytes,
  pairingProof,
  toBase64Url,
  TrustStore,
  type DeviceIdentity,
  type Invite,
  type PairingTranscript,
  type SignedStatement,
  type TrustLevel,
} from "../../identity/index.js";
import type { PairingChannel } from "./channel.js";
import { PairingError } from "./errors.js";
import { toJoinerSchema } from "./messages.js";
import { bytesField, receiveMessage, remoteError, sendError } from "./wire.js";

/** Options of {@link runPairingJoiner}. */
export interface JoinerOptions {
  /** Per-message wait, ms (default 30 s). */
  readonly timeoutMs?: number;
  /** Clock, for evaluating the joiner's resulting level. */
  readonly now?: () => number;
}

/** What a successful join yields. */
export interface JoinResult {
  readonly meshId: string;
  readonly inviter: string;
  /** The joiner's certificate, signed by the inviter. */
  readonly certificate: SignedStatement<"trust-cert">;
  /** The mesh statements the inviter held (genesis, certificates, revocations), verified. */
  readonly statements: readonly SignedStatement[];
  /** Six digits to compare with the inviter's screen. */
  readonly comparisonCode: string;
  /** The joiner's level as its own evaluation of the received statements gives it. */
  readonly level: TrustLevel;
}

/**
 * The joiner's side of pairing: proves it holds the invite secret (HMAC over
 * both nonces, both ids and the level) and its device key, checks the
 * inviter's proof in return, and verifies every statement it receives.
 * Throws {@link InviteError} when the inviter refused the invite and
 * {@link PairingError} for everything else.
 */
export async function runPairingJoiner(channel: PairingChannel, invite: Invite, joiner: DeviceIdentity, options: JoinerOptions = {}): Promise<JoinResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  try {
    const joinerNonce = new Uint8Array(randomBytes(32));
    await channel.send({
      type: "hello",
      v: 1,
      inviteId: toBase64Url(invite.id),
      meshId: invite.meshId,
      joiner: joiner.peerId,
      nonce: toBase64Url(joinerNonce),
    });
    const challenge = await receiveMessage(channel, toJoinerSchema, timeoutMs);
    if (challenge.type === "error") throw remoteError(challenge);
    if (challenge.type !== "challenge") throw new PairingError("PAIRING_PROTOCOL", `expected a challenge, got ${challenge.type}`);
    if (challenge.inviter !== invite.inviter) {
      throw new PairingError("PAIRING_PEER_MISMATCH", `the invite names ${invite.inviter} but ${challenge.inviter} answered`);
    }
    const transcript: PairingTranscript = {
      inviteId: invite.id,
      meshId: invite.meshId,
      joiner: joiner.peerId,
      inviter: invite.inviter,
      joinerNonce,
      inviterNonce: bytesField(challenge.nonce),
      level: invite.level,
    };
    await channel.send({
      type: "proof",
      mac: toBase64Url(pairingProof(invite.secret, "joiner", transcript)),
      sig: toBase64Url(joiner.sign(joinerKeyProofBytes(transcript))),
    });
    const welcome = await receiveMessage(channel, toJoinerSchema, timeoutMs);
    if (welcome.type === "error") throw remoteError(welcome);
    if (welcome.type !== "welcome") throw new PairingError("PAIRING_PROTOCOL", `expected a welcome, got ${welcome.type}`);
    if (!checkPairingProof(invite.secret, "inviter", transcript, bytesField(welcome.mac))) {
      throw new PairingError("PAIRING_INVITER_UNPROVEN", "the inviter did not prove it knows the invite secret");
    }
    const certificate = decodeCertificate(welcome.certificate, invite, joiner.peerId);
    const statements = welcome.statements.map((text) => decodeReceived(text));
    const store = new TrustStore(invite.meshId);
    store.addAll(statements);
    store.add(certificate);
    if (store.genesis === undefined) throw new PairingError("PAIRING_BAD_CERTIFICATE", `the inviter sent no genesis of mesh ${invite.meshId}`);
    return {
      meshId: invite.meshId,
      inviter: invite.inviter,
      certificate,
      statements,
      comparisonCode: comparisonCode(transcript),
      level: store.level(joiner.peerId, (options.now ?? Date.now)()),
    };
  } catch (err) {
    if (err instanceof PairingError && err.code !== "PAIRING_TIMEOUT") await sendError(channel, err);
    throw err;
  }
}

function decodeReceived(text: string): SignedStatement {
  try {
    return decodeStatement(bytesField(text));
  } catch (err) {
    if (err instanceof DecodeError) throw new PairingError("PAIRING_BAD_CERTIFICATE", `a received statement is invalid: ${err.message}`, err);
    throw err;
  }
}

function decodeCertificate(text: string, invite: Invite, joiner: string): SignedStatement<"trust-cert"> {
  const statement = decodeReceived(text);
  if (statement.kind !== "trust-cert") throw new PairingError("PAIRING_BAD_CERTIFICATE", `expected a trust-cert, got ${statement.kind}`);
  const { body } = statement;
  if (body.subject !== joiner || body.issuer !== invite.inviter || body.meshId !== invite.meshId || body.level !== invite.level) {
    throw new PairingError("PAIRING_BAD_CERTIFICATE", "the certificate does not match the invite (subject, issuer, mesh or level)");
  }
  return statement;
}
