import { decode, encode, Tokenizer, Type, type Token } from "cborg";
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

interface Frame {
  /** Child tokens still to come (maps count keys and values). */
  remaining: number;
  readonly isMap: boolean;
  /** Where the previous key's encoding starts and ends (-1: none yet), for the ordering check. */
  lastKeyStart: number;
  lastKeyEnd: number;
}

/**
 * Checks canonical form token by token while cborg decodes, so no second
 * encoding is needed on the hot path. cborg's strict mode already refuses
 * non-minimal integers and lengths; this adds what it cannot check: nesting
 * depth (cborg recurses unbounded, so hostile nesting would overflow the
 * stack), map keys that are text in strictly increasing RFC 8949 order (which
 * also refuses duplicates), valid UTF-8, and floats in their shortest form.
 */
class CanonicalTokenizer {
  private readonly inner: Tokenizer;
  private readonly frames: Frame[] = [];
  constructor(
    private readonly data: Uint8Array,
    options: object,
    private readonly maxDepth: number,
  ) {
    this.inner = new Tokenizer(data, options);
  }
  done(): boolean {
    return this.inner.done();
  }
  pos(): number {
    return this.inner.pos();
  }
  next(): Token {
    const start = this.inner.pos();
    const token = this.inner.next();
    const frames = this.frames;
    while (frames.length > 0 && frames[frames.length - 1]!.remaining === 0) frames.pop();
    const parent = frames[frames.length - 1];
    if (parent !== undefined) {
      if (parent.isMap && parent.remaining % 2 === 0) this.checkKey(parent, token, start);
      parent.remaining -= 1;
    }
    if (token.type === Type.string && !isUtf8(this.data.subarray(start + headerLength(this.data[start] ?? 0), this.inner.pos()))) {
      throw new DecodeError("NOT_CANONICAL", "text is not valid UTF-8");
    }
    if (token.type === Type.float && !bytesEqual(encode(token.value), this.data.subarray(start, this.inner.pos()))) {
      throw new DecodeError("NOT_CANONICAL", "float is not in its shortest form");
    }
    if ((token.type === Type.array || token.type === Type.map) && token.value > 0) {
      const isMap = token.type === Type.map;
      frames.push({ remaining: isMap ? token.value * 2 : token.value, isMap, lastKeyStart: -1, lastKeyEnd: -1 });
      if (frames.length > this.maxDepth) throw new DecodeError("TOO_DEEP", `nesting deeper than ${this.maxDepth}`);
    }
    return token;
  }
  private checkKey(frame: Frame, token: Token, start: number): void {
    if (token.type !== Type.string) throw new DecodeError("WRONG_TYPE", "map keys must be text");
    const end = this.inner.pos();
    if (frame.lastKeyStart >= 0) {
      const order = compareRanges(this.data, frame.lastKeyStart, frame.lastKeyEnd, start, end);
      if (order === 0) throw new DecodeError("DUPLICATE_KEY", "duplicate map key");
      if (order > 0) throw new DecodeError("NOT_CANONICAL", "map keys are not in canonical order");
    }
    frame.lastKeyStart = start;
    frame.lastKeyEnd = end;
  }
}

/** Bytewise comparison of two ranges of one buffer (no subarray allocations on the hot path). */
function compareRanges(data: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const length = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < length; i += 1) {
    const diff = data[aStart + i]! - data[bStart + i]!;
    if (diff !== 0) return diff;
  }
  return aEnd - aStart - (bEnd - bStart);
}

const HEADER_BYTES: Record<number, number> = { 24: 2, 25: 3, 26: 5, 27: 9 };

/** Bytes of a CBOR head, from its initial byte. */
function headerLength(initial: number): number {
  return HEADER_BYTES[initial & 31] ?? 1;
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
  try {
    return withoutStacks(() => decode(bytes, { ...DECODE_OPTIONS, tokenizer: new CanonicalTokenizer(bytes, DECODE_OPTIONS, limits.maxDepth) }));
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new DecodeError(/repeat map key/.test(message) ? "DUPLICATE_KEY" : "MALFORMED", `not valid CBOR: ${message}`, err);
  }
}
