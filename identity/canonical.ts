import { decode, encode } from "cborg";
import { DecodeError, withoutStacks } from "./errors.js";
import { isUtf8 } from "node:buffer";
import { bytesEqual } from "./bytes.js";

/** Bounds every strict decode enforces before any value reaches a caller. */
export interface DecodeLimits {
  /** Largest accepted input, in bytes. */
  readonly maxBytes: number;
  /** Deepest accepted nesting of arrays and maps (the top-level container is depth 1). */
  readonly maxDepth: number;
}

/** Limits for signed statements: small documents with a shallow, fixed shape. */
export const STATEMENT_LIMITS: DecodeLimits = { maxBytes: 4096, maxDepth: 8 };

// cborg's default sorter orders keys by encoded length, then bytewise. For
// text keys (the only keys this decoder admits) that is exactly RFC 8949's
// bytewise order of encoded keys, because the header grows with the length;
// and it is several times faster than cborg's rfc8949 sorter, which encodes
// every key a second time.
const ENCODE_OPTIONS = {
  // Optional fields are written by omission; undefined never reaches the bytes.
  ignoreUndefinedProperties: true,
  typeEncoders: {
    undefined: () => {
      throw new DecodeError("WRONG_TYPE", "undefined has no canonical encoding");
    },
    number: (n: number) => {
      if (!Number.isFinite(n)) throw new DecodeError("WRONG_TYPE", "non-finite numbers have no canonical encoding");
      return null;
    },
  },
};

/**
 * Canonical CBOR: RFC 8949 bytewise-sorted map keys, smallest integer and float
 * forms, no tags, no undefined. The same value always gives the same bytes,
 * which is what signatures and content ids rest on.
 */
export function encodeCanonical(value: unknown): Uint8Array {
  return encode(value, ENCODE_OPTIONS);
}

/**
 * One iterative pass over the raw bytes before cborg decodes them. cborg's
 * strict mode refuses non-minimal integers and lengths; this adds what it
 * cannot check: nesting depth (cborg recurses without bound, so hostile
 * nesting would overflow the stack), text-only map keys in strictly
 * increasing RFC 8949 order (which also refuses duplicates), valid UTF-8,
 * shortest floats, and no tags, undefined, simple values or indefinite
 * lengths. It allocates nothing on the common path, which makes it several
 * times cheaper than checking cborg's tokens or re-encoding.
 */
function scanCanonical(data: Uint8Array, maxDepth: number): void {
  // Per open container: items still to come, whether it is a map, and where
  // its previous key's encoding starts and ends.
  const remaining: number[] = [1];
  const isMap: boolean[] = [false];
  const keyStart: number[] = [-1];
  const keyEnd: number[] = [-1];
  let pos = 0;
  while (remaining.length > 0) {
    if (pos >= data.length) throw new DecodeError("MALFORMED", "input ends inside a value");
    const top = remaining.length - 1;
    const atKey = isMap[top] === true && remaining[top]! % 2 === 0;
    remaining[top]! -= 1;
    const initial = data[pos]!;
    const major = initial >>> 5;
    const info = initial & 31;
    if (info === 31) throw new DecodeError("MALFORMED", "indefinite lengths are not allowed");
    if (info > 27) throw new DecodeError("MALFORMED", `reserved additional information ${info}`);
    const headBytes = info < 24 ? 1 : 1 + (1 << (info - 24));
    if (pos + headBytes > data.length) throw new DecodeError("MALFORMED", "input ends inside a head");
    const argument = info < 24 ? info : readArgument(data, pos + 1, headBytes - 1);
    if (atKey && major !== 3) throw new DecodeError("WRONG_TYPE", "map keys must be text");
    let next = pos + headBytes;
    if (major === 2 || major === 3) {
      if (argument > data.length - next) throw new DecodeError("MALFORMED", "input ends inside a string");
      next += argument;
      if (major === 3 && !isAscii(data, pos + headBytes, next) && !isUtf8(data.subarray(pos + headBytes, next))) {
        throw new DecodeError("NOT_CANONICAL", "text is not valid UTF-8");
      }
    } else if (major === 6) {
      throw new DecodeError("MALFORMED", "tags are not allowed");
    } else if (major === 7) {
      if (info >= 25) {
        if (!bytesEqual(encode(decode(data.subarray(pos, next))), data.subarray(pos, next))) {
          throw new DecodeError("NOT_CANONICAL", "float is not in its shortest form");
        }
      } else if (info < 20 || info > 22) {
        throw new DecodeError("MALFORMED", "only false, true and null are allowed among simple values");
      }
    }
    if (atKey) {
      if (keyStart[top]! >= 0) {
        const order = compareRanges(data, keyStart[top]!, keyEnd[top]!, pos, next);
        if (order === 0) throw new DecodeError("DUPLICATE_KEY", "duplicate map key");
        if (order > 0) throw new DecodeError("NOT_CANONICAL", "map keys are not in canonical order");
      }
      keyStart[top] = pos;
      keyEnd[top] = next;
    }
    pos = next;
    if ((major === 4 || major === 5) && argument > 0) {
      if (remaining.length > maxDepth) throw new DecodeError("TOO_DEEP", `nesting deeper than ${maxDepth}`);
      if (argument > data.length) throw new DecodeError("MALFORMED", "container longer than the input");
      remaining.push(major === 5 ? argument * 2 : argument);
      isMap.push(major === 5);
      keyStart.push(-1);
      keyEnd.push(-1);
    }
    while (remaining.length > 0 && remaining[remaining.length - 1] === 0) {
      remaining.pop();
      isMap.pop();
      keyStart.pop();
      keyEnd.pop();
    }
  }
  if (pos !== data.length) throw new DecodeError("MALFORMED", "trailing bytes after the value");
}

function readArgument(data: Uint8Array, at: number, bytes: number): number {
  let value = 0;
  for (let i = 0; i < bytes; i += 1) value = value * 256 + data[at + i]!;
  return value;
}

function isAscii(data: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i += 1) if (data[i]! > 0x7f) return false;
  return true;
}

/** Bytewise comparison of two ranges of one buffer. */
function compareRanges(data: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const length = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < length; i += 1) {
    const diff = data[aStart + i]! - data[bStart + i]!;
    if (diff !== 0) return diff;
  }
  return aEnd - aStart - (bEnd - bStart);
}

const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
};

/**
 * Strict canonical decode: size and depth are bounded; duplicate or
 * unsorted keys, non-text keys, non-minimal integers, lengths and floats,
 * invalid UTF-8, indefinite lengths, tags, undefined, NaN and big integers
 * are refused. Whatever it accepts is exactly the canonical encoding of the
 * value it returns (the fuzz suite holds it to that). Every refusal is a
 * {@link DecodeError}.
 */
export function decodeCanonical(bytes: Uint8Array, limits: DecodeLimits): unknown {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError("WRONG_TYPE", "input is not bytes");
  if (bytes.byteLength > limits.maxBytes) {
    throw new DecodeError("OVERSIZE", `${bytes.byteLength} bytes exceeds the limit of ${limits.maxBytes}`);
  }
  scanCanonical(bytes, limits.maxDepth);
  try {
    return withoutStacks((): unknown => decode(bytes, DECODE_OPTIONS));
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new DecodeError(/repeat map key/.test(message) ? "DUPLICATE_KEY" : "MALFORMED", `not valid CBOR: ${message}`, err);
  }
}
