import type { z } from "zod";
import { fromBase64Url, InviteError, type InviteErrorCode } from "../../identity/index.js";
import { receiveWithin, type PairingChannel } from "./channel.js";
import { PairingError } from "./errors.js";
import type { ErrorMessage } from "./messages.js";

const INVITE_CODES: ReadonlySet<string> = new Set<InviteErrorCode>([
  "INVITE_MALFORMED",
  "INVITE_UNKNOWN",
  "INVITE_REPLAYED",
  "INVITE_EXPIRED",
  "INVITE_WRONG_SECRET",
  "INVITE_OTHER_MESH",
  "INVITE_RATE_LIMITED",
]);

/** Bytes of a base64url field a schema already shaped. */
export function bytesField(text: string): Uint8Array {
  const bytes = fromBase64Url(text);
  if (bytes === undefined) throw new PairingError("PAIRING_PROTOCOL", "a binary field is not canonical base64url");
  return bytes;
}

/** The error a peer's error message stands for: invite refusals keep their invite code. */
export function remoteError(message: ErrorMessage): Error {
  const text = `peer refused pairing: ${message.message}`;
  if (INVITE_CODES.has(message.code)) return new InviteError(message.code as InviteErrorCode, text);
  return new PairingError("PAIRING_PROTOCOL", `${text} (${message.code})`);
}

/** Receives one message and validates it; anything off-schema is a PAIRING_PROTOCOL error. */
export async function receiveMessage<S extends z.ZodType>(channel: PairingChannel, schema: S, timeoutMs: number): Promise<z.infer<S>> {
  const raw = await receiveWithin(channel, timeoutMs);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PairingError("PAIRING_PROTOCOL", `unexpected pairing message: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim());
  }
  return parsed.data;
}

/** Tells the peer why the handshake ends, without letting a dead channel hide the real error. */
export async function sendError(channel: PairingChannel, err: { code: string; message: string }): Promise<void> {
  await channel.send({ type: "error", code: err.code.slice(0, 64), message: err.message.slice(0, 512) }).catch(() => undefined);
}
