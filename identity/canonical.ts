import { decode, encode, rfc8949EncodeOptions, Tokenizer, Type, type Token } from "cborg";
import { DecodeError } from "./errors.js";
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

const ENCODE_OPTIONS = {
  ...rfc8949EncodeOptions,
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
 * cborg decodes recursively with no depth bound, so hostile nesting would
 * overflow the stack. This tokenizer counts open containers and stops at the
 * limit before the recursion can get there.
 */
class DepthLimitedTokenizer {
  private readonly inner: Tokenizer;
  private readonly remaining: number[] = [];
  constructor(data: Uint8Array, options: object, private readonly maxDepth: number) {
    this.inner = new Tokenizer(data, options);
  }
  done(): boolean {
    return this.inner.done();
  }
  pos(): number {
    return this.inner.pos();
  }
  next(): Token {
    const token = this.inner.next();
    const stack = this.remaining;
    while (stack.length > 0 && stack[stack.length - 1] === 0) stack.pop();
    if (stack.length > 0) stack[stack.length - 1]! -= 1;
    if ((token.type === Type.array || token.type === Type.map) && token.value > 0) {
      stack.push(token.type === Type.map ? token.value * 2 : token.value);
      if (stack.length > this.maxDepth) throw new DecodeError("TOO_DEEP", `nesting deeper than ${this.maxDepth}`);
    }
    return token;
  }
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
 * Strict canonical decode: size and depth are bounded, duplicate keys,
 * indefinite lengths, tags, undefined, NaN and big integers are refused, and
 * the input must be exactly the canonical encoding of what it decodes to
 * (which also rules out unsorted keys and oversized floats, the two things
 * cborg cannot check while decoding). Every refusal is a {@link DecodeError}.
 */
export function decodeCanonical(bytes: Uint8Array, limits: DecodeLimits): unknown {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError("WRONG_TYPE", "input is not bytes");
  if (bytes.byteLength > limits.maxBytes) {
    throw new DecodeError("OVERSIZE", `${bytes.byteLength} bytes exceeds the limit of ${limits.maxBytes}`);
  }
  let value: unknown;
  try {
    value = decode(bytes, { ...DECODE_OPTIONS, tokenizer: new DepthLimitedTokenizer(bytes, DECODE_OPTIONS, limits.maxDepth) });
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new DecodeError(/repeat map key/.test(message) ? "DUPLICATE_KEY" : "MALFORMED", `not valid CBOR: ${message}`, err);
  }
  let again: Uint8Array;
  try {
    again = encodeCanonical(value);
  } catch (err) {
    throw new DecodeError("NOT_CANONICAL", "decoded value has no canonical encoding", err);
  }
  if (!bytesEqual(again, bytes)) throw new DecodeError("NOT_CANONICAL", "input is not in canonical form");
  return value;
}
