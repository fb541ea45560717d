import { createHash } from "node:crypto";
import { decodeCanonical, encodeCanonical, STATEMENT_LIMITS } from "./canonical.js";
import { concatBytes, utf8 } from "./bytes.js";
import { publicKeyOfDeviceId } from "./device-id.js";
import { ed25519 } from "./ed25519.js";
import { DecodeError, withoutStacks } from "./errors.js";
import { statementKindSpec, type StatementBodies, type StatementKind } from "./statement-kinds.js";

/** Envelope version this code writes and the only one it reads. */
export const STATEMENT_VERSION = 1;

// Keeps a statement signature from ever being valid as any other signed thing.
const DOMAIN = utf8("coderclaw-statement-v1\0");

/**
 * A decoded, schema-checked, signature-verified statement. On the wire it is
 * the canonical CBOR map `{v, kind, body, issuer, sig}` (`bytes`). What is
 * signed is the domain tag followed by the canonical CBOR of `{v, kind, body,
 * issuer}`; `id` is the lowercase hex SHA-256 of those signed bytes, so the
 * id does not depend on the signature's encoding.
 */
export type SignedStatement<K extends StatementKind = StatementKind> = {
  [P in K]: {
    readonly v: 1;
    readonly kind: P;
    readonly body: StatementBodies[P];
    /** Device id of the signer. */
    readonly issuer: string;
    readonly sig: Uint8Array;
    /** Content id (hex SHA-256 of the signed bytes). */
    readonly id: string;
    /** The canonical envelope bytes, for storage and transport. */
    readonly bytes: Uint8Array;
  };
}[K];

/** Something that can sign as a device: a {@link DeviceIdentity} fits. */
export interface StatementSigner {
  readonly peerId: string;
  sign(bytes: Uint8Array): Uint8Array;
}

function signedBytes(kind: string, body: unknown, issuer: string): Uint8Array {
  return concatBytes(DOMAIN, encodeCanonical({ v: STATEMENT_VERSION, kind, body, issuer }));
}

// A canonical envelope is a5 {v} {sig} {body} {kind} {issuer} (keys sorted
// bytewise) with v = 1 (3 bytes) and a 64-byte sig (70 bytes); the signed map
// is a4 {v} {body} {kind} {issuer}. Slicing saves re-encoding on the hot path,
// and is only sound after decodeCanonical and the envelope checks passed.
const V_ENTRY_END = 4;
const SIG_ENTRY_END = V_ENTRY_END + 70;

function signedBytesOfEnvelope(envelope: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN.byteLength + envelope.byteLength - 70);
  out.set(DOMAIN, 0);
  out[DOMAIN.byteLength] = 0xa4;
  out.set(envelope.subarray(1, V_ENTRY_END), DOMAIN.byteLength + 1);
  out.set(envelope.subarray(SIG_ENTRY_END), DOMAIN.byteLength + V_ENTRY_END);
  return out;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Validates `body` against its kind's schema and signs it. Throws a
 * {@link DecodeError} when the body is invalid or the signer is not the
 * device the body says must sign it.
 */
export function signStatement<K extends StatementKind>(signer: StatementSigner, kind: K, body: StatementBodies[K]): SignedStatement<K> {
  const spec = statementKindSpec(kind);
  if (spec === undefined) throw new DecodeError("UNKNOWN_KIND", `unknown statement kind: ${kind}`);
  const parsed = spec.schema.safeParse(body);
  if (!parsed.success) throw new DecodeError("WRONG_TYPE", `${kind}: ${parsed.error.issues[0]?.message ?? "invalid body"}`);
  if (spec.signer(body) !== signer.peerId) {
    throw new DecodeError("BAD_SIGNATURE", `${kind} must be signed by ${spec.signer(body)}, not ${signer.peerId}`);
  }
  const toSign = signedBytes(kind, body, signer.peerId);
  const sig = signer.sign(toSign);
  const bytes = encodeCanonical({ v: STATEMENT_VERSION, kind, body, issuer: signer.peerId, sig });
  return { v: 1, kind, body, issuer: signer.peerId, sig, id: sha256Hex(toSign), bytes };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

const ENVELOPE_KEYS = ["body", "issuer", "kind", "sig", "v"];

/**
 * Strictly decodes and verifies one statement: canonical CBOR within
 * {@link STATEMENT_LIMITS}, envelope of exactly `{v, kind, body, issuer, sig}`,
 * version 1, a registered kind, a body its schema accepts, signed by the
 * device the body names, with a valid signature. Every refusal is a
 * {@link DecodeError} with a code.
 */
export function decodeStatement(bytes: Uint8Array): SignedStatement {
  const value = decodeCanonical(bytes, STATEMENT_LIMITS);
  if (!isPlainObject(value)) throw new DecodeError("WRONG_TYPE", "statement is not a map");
  if (value.v !== STATEMENT_VERSION) throw new DecodeError("UNKNOWN_VERSION", `unknown statement version: ${String(value.v)}`);
  let keyCount = 0;
  for (const key in value) if (Object.hasOwn(value, key)) keyCount += 1;
  if (keyCount !== ENVELOPE_KEYS.length || !ENVELOPE_KEYS.every((k) => Object.hasOwn(value, k))) {
    throw new DecodeError("WRONG_TYPE", `statement envelope must have exactly the keys ${ENVELOPE_KEYS.join(", ")}`);
  }
  const { kind, body, issuer, sig } = value;
  if (typeof kind !== "string") throw new DecodeError("WRONG_TYPE", "statement kind is not a string");
  const spec = statementKindSpec(kind);
  if (spec === undefined) throw new DecodeError("UNKNOWN_KIND", `unknown statement kind: ${kind.slice(0, 64)}`);
  if (typeof issuer !== "string") throw new DecodeError("WRONG_TYPE", "statement issuer is not a string");
  const publicKey = publicKeyOfDeviceId(issuer);
  if (publicKey === undefined) throw new DecodeError("WRONG_TYPE", "statement issuer is not a device id");
  if (!(sig instanceof Uint8Array) || sig.byteLength !== 64) throw new DecodeError("WRONG_TYPE", "statement sig is not 64 bytes");
  const parsed = withoutStacks(() => spec.schema.safeParse(body));
  if (!parsed.success) throw new DecodeError("WRONG_TYPE", `${kind}: ${parsed.error.issues[0]?.message ?? "invalid body"}`);
  if (spec.signer(parsed.data) !== issuer) throw new DecodeError("BAD_SIGNATURE", `${kind} signed by ${issuer}, but its body names another signer`);
  const toVerify = signedBytesOfEnvelope(bytes);
  if (!ed25519.verify(sig, toVerify, publicKey)) throw new DecodeError("BAD_SIGNATURE", `${kind} signature does not verify`);
  // The body handed back is the one that was signed, whatever a schema might transform.
  return { v: 1, kind, body, issuer, sig, id: sha256Hex(toVerify), bytes } as SignedStatement;
}

