import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { encodeCanonical } from "./canonical.js";
import { utf8 } from "./bytes.js";

/** Everything both sides of a pairing agree on; both proofs and the comparison code bind all of it. */
export interface PairingTranscript {
  readonly inviteId: Uint8Array;
  readonly meshId: string;
  readonly joiner: string;
  readonly inviter: string;
  readonly joinerNonce: Uint8Array;
  readonly inviterNonce: Uint8Array;
  readonly level: "verified" | "trusted";
}

/** Canonical bytes of a transcript. */
export function transcriptBytes(transcript: PairingTranscript): Uint8Array {
  return encodeCanonical({ ...transcript });
}

/**
 * HMAC-SHA256 keyed by the invite secret over the role and the transcript:
 * proves knowledge of the secret without revealing it, and the role label
 * stops one side's proof being reflected back as the other's.
 */
export function pairingProof(secret: Uint8Array, role: "joiner" | "inviter", transcript: PairingTranscript): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", secret)
      .update(utf8(`coderclaw-pair-v1\0${role}\0`))
      .update(transcriptBytes(transcript))
      .digest(),
  );
}

/** Constant-time check of a peer's proof. */
export function checkPairingProof(secret: Uint8Array, role: "joiner" | "inviter", transcript: PairingTranscript, proof: Uint8Array): boolean {
  const expected = pairingProof(secret, role, transcript);
  return proof.byteLength === expected.byteLength && timingSafeEqual(proof, expected);
}

/** The bytes a joiner signs with its device key to prove it holds the key it asks a certificate for. */
export function joinerKeyProofBytes(transcript: PairingTranscript): Uint8Array {
  return new Uint8Array(Buffer.concat([utf8("coderclaw-pair-key-v1\0"), transcriptBytes(transcript)]));
}

/** Six digits both sides derive from the transcript, for optional comparison by the humans. */
export function comparisonCode(transcript: PairingTranscript): string {
  const digest = createHash("sha256").update(utf8("coderclaw-pair-code-v1\0")).update(transcriptBytes(transcript)).digest();
  return String(digest.readUInt32BE(0) % 1_000_000).padStart(6, "0");
}
