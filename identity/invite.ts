import { randomBytes } from "node:crypto";
import { z } from "zod";
import { decodeCanonical, encodeCanonical } from "./canonical.js";
import { fromBase64Url, toBase64Url } from "./bytes.js";
import { DecodeError, InviteError } from "./errors.js";
import { deviceIdSchema, grantableLevelSchema, meshIdSchema, timestampSchema } from "./statement-kinds.js";

/** What a joiner needs to pair: who to dial, which mesh, and the one-time secret. */
export interface Invite {
  /** Random 8-byte handle the inviter files the invite under (not secret). */
  readonly id: Uint8Array;
  readonly meshId: string;
  /** Device id of the inviter. */
  readonly inviter: string;
  /** Multiaddr strings the inviter listens on. */
  readonly addrs: readonly string[];
  /** 16-byte one-time secret; never sent during pairing, only proven. */
  readonly secret: Uint8Array;
  /** Level the joiner's certificate will carry. */
  readonly level: "verified" | "trusted";
  /** Expiry, ms since the epoch. */
  readonly expiresAt: number;
}

/** Prefix of the invite string; the digit is the format version. */
export const INVITE_PREFIX = "ccinv1.";

const bytesOf = (length: number) => z.instanceof(Uint8Array).refine((b) => b.byteLength === length, `must be ${length} bytes`);

// Short keys keep the string (and its QR code) small.
const wireSchema = z.strictObject({
  v: z.literal(1),
  i: bytesOf(8),
  m: meshIdSchema,
  p: deviceIdSchema,
  a: z.array(z.string().min(1).max(256)).max(16),
  s: bytesOf(16),
  l: grantableLevelSchema,
  e: timestampSchema,
});

/** Makes a fresh invite with a random id and secret. */
export function createInvite(options: {
  meshId: string;
  inviter: string;
  addrs: readonly string[];
  level: "verified" | "trusted";
  expiresAt: number;
}): Invite {
  return {
    id: new Uint8Array(randomBytes(8)),
    meshId: options.meshId,
    inviter: options.inviter,
    addrs: [...options.addrs],
    secret: new Uint8Array(randomBytes(16)),
    level: options.level,
    expiresAt: options.expiresAt,
  };
}

/** The invite as one compact string: `ccinv1.` + base64url of canonical CBOR. */
export function encodeInvite(invite: Invite): string {
  const wire = {
    v: 1,
    i: invite.id,
    m: invite.meshId,
    p: invite.inviter,
    a: [...invite.addrs],
    s: invite.secret,
    l: invite.level,
    e: invite.expiresAt,
  };
  const checked = wireSchema.safeParse(wire);
  if (!checked.success) throw new InviteError("INVITE_MALFORMED", `invalid invite: ${describe(checked.error)}`);
  return INVITE_PREFIX + toBase64Url(encodeCanonical(wire));
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue === undefined ? "invalid" : `${issue.path.join(".") || "invite"}: ${issue.message}`;
}

/**
 * Parses an invite string; every defect is an {@link InviteError} with code
 * INVITE_MALFORMED and a message saying what is wrong. Expiry is not checked
 * here (the inviter's book is the authority on that).
 */
export function parseInvite(text: string): Invite {
  const trimmed = text.trim();
  if (!trimmed.startsWith(INVITE_PREFIX)) {
    throw new InviteError("INVITE_MALFORMED", `not a CoderClaw invite: it must start with "${INVITE_PREFIX}"`);
  }
  const bytes = fromBase64Url(trimmed.slice(INVITE_PREFIX.length));
  if (bytes === undefined) throw new InviteError("INVITE_MALFORMED", "invite is damaged: not base64url (was it cut or wrapped?)");
  let value: unknown;
  try {
    value = decodeCanonical(bytes, { maxBytes: 8192, maxDepth: 2 });
  } catch (err) {
    if (err instanceof DecodeError) throw new InviteError("INVITE_MALFORMED", `invite is damaged: ${err.message}`, err);
    throw err;
  }
  const parsed = wireSchema.safeParse(value);
  if (!parsed.success) throw new InviteError("INVITE_MALFORMED", `invite is damaged: ${describe(parsed.error)}`);
  const w = parsed.data;
  return { id: w.i, meshId: w.m, inviter: w.p, addrs: w.a, secret: w.s, level: w.l, expiresAt: w.e };
}
