import { IdentityError } from "../../identity/index.js";

/** Why a pairing failed for a reason other than an invite refusal (those are InviteErrors). */
export type PairingErrorCode =
  | "PAIRING_PROTOCOL"
  | "PAIRING_TIMEOUT"
  | "PAIRING_PEER_MISMATCH"
  | "PAIRING_INVITER_UNPROVEN"
  | "PAIRING_JOINER_UNPROVEN"
  | "PAIRING_BAD_CERTIFICATE";

/** A pairing handshake failed; `code` says how. */
export class PairingError extends IdentityError {
  declare readonly code: PairingErrorCode;
  constructor(code: PairingErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
