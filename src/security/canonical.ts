import { decode, encode } from "cborg";

/** Largest encoded statement or audit entry we accept; bounds decoder work on untrusted input. */
export const MAX_CANONICAL_BYTES = 64 * 1024;

/**
 * Canonical CBOR (cborg defaults: RFC 7049 length-first key order, smallest ints/floats),
 * the same rule identity/ uses, so signed bytes are reproducible on every node.
 * `undefined` properties are dropped rather than encoded, so optional fields never
 * change the bytes when absent.
 */
export function canonicalEncode(value: unknown): Uint8Array {
  return encode(value, { ignoreUndefinedProperties: true });
}

/**
 * Strict decoding of bytes from outside: duplicate keys, indefinite lengths and
 * non-minimal encodings are refused, so one value has exactly one encoding.
 */
export function canonicalDecode(bytes: Uint8Array): unknown {
  if (bytes.length > MAX_CANONICAL_BYTES) throw new RangeError(`encoded value exceeds ${MAX_CANONICAL_BYTES} bytes`);
  return decode(bytes, { strict: true, rejectDuplicateMapKeys: true, allowIndefinite: false, allowUndefined: false, useMaps: false });
}
