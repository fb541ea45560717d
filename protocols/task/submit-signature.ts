import { createHash } from "node:crypto";

/** Sets these signed bytes apart from anything else a device key signs. */
const DOMAIN = Buffer.from("coderclaw/task/submit/3\n", "utf8");

/**
 * The bytes a requester signs for the envelopes of one `submit` message: a
 * domain tag, then the SHA-256 of each envelope in order. One signature so
 * vouches for every submission in the message, and changing, dropping, adding
 * or reordering any envelope breaks it. Digests are fixed-size, so the
 * concatenation is unambiguous.
 */
export function submitSignedBytes(envelopes: readonly Uint8Array[]): Uint8Array {
  const out = Buffer.allocUnsafe(DOMAIN.length + 32 * envelopes.length);
  DOMAIN.copy(out, 0);
  envelopes.forEach((envelope, i) => createHash("sha256").update(envelope).digest().copy(out, DOMAIN.length + 32 * i));
  return out;
}
