import { decodeCanonical, encodeCanonical, type DecodeLimits } from "../../identity/canonical.js";

/** Bounds on decoding an audit entry from storage or the network. */
export const AUDIT_LIMITS: DecodeLimits = { maxBytes: 16 * 1024, maxDepth: 4 };

/**
 * identity/'s canonical CBOR (RFC 8949 bytewise key order, smallest forms, no
 * undefined), so every signed byte in the mesh follows one rule.
 */
export function canonicalEncode(value: unknown): Uint8Array {
  return encodeCanonical(value);
}

/** Strict, bounded decoding (duplicate keys, indefinite lengths, excess depth or size are refused). */
export function canonicalDecode(bytes: Uint8Array, limits: DecodeLimits = AUDIT_LIMITS): unknown {
  return decodeCanonical(bytes, limits);
}
