import { decodeCanonical, encodeCanonical, type DecodeLimits } from "../../identity/canonical.js";

/** Bounds on decoding security data (session claims) from outside. */
export const SECURITY_DECODE_LIMITS: DecodeLimits = { maxBytes: 4 * 1024, maxDepth: 4 };

/**
 * identity/'s canonical CBOR (RFC 8949 bytewise key order, smallest forms, no
 * undefined), so every signed byte in the mesh follows one rule.
 */
export function canonicalEncode(value: unknown): Uint8Array {
  return encodeCanonical(value);
}

/** Strict, bounded decoding (duplicate keys, indefinite lengths, excess depth or size are refused). */
export function canonicalDecode(bytes: Uint8Array, limits: DecodeLimits = SECURITY_DECODE_LIMITS): unknown {
  return decodeCanonical(bytes, limits);
}
