import { decode, encode } from "cborg";
import { z } from "zod";
import { FrameTooLargeError, MalformedFrameError, UnsupportedVersionError } from "./errors.js";

/** Schema of a CBOR byte string (decoded as a Uint8Array). */
export const bytesSchema = z.custom<Uint8Array>((value) => value instanceof Uint8Array, "expected bytes");

/** Encodes messages of one protocol to canonical CBOR and strictly decodes and validates them. */
export interface MessageCodec<T> {
  /** Protocol version carried in every message envelope. */
  readonly version: number;
  /** Largest encoded message accepted or produced, in bytes. */
  readonly maxMessageBytes: number;
  encode(message: T): Uint8Array;
  /** Throws {@link MalformedFrameError} or {@link UnsupportedVersionError}; never returns unvalidated data. */
  decode(bytes: Uint8Array): T;
}

/** Options of {@link createMessageCodec}. */
export interface MessageCodecOptions<S extends z.ZodType> {
  /** The protocol version this node speaks; messages carrying another are refused. */
  version: number;
  /** Schema every decoded message must satisfy. */
  schema: S;
  /** Default 1 MiB. */
  maxMessageBytes?: number;
}

/**
 * Strict decoding: CBOR that two encoders could write differently (indefinite
 * lengths, non-minimal integers, duplicate keys) is refused, so the bytes a peer
 * signs are the bytes everyone else re-encodes.
 */
const DECODE_OPTIONS = {
  strict: true,
  rejectDuplicateMapKeys: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  useMaps: false,
} as const;

/** Canonical CBOR of `value` (sorted map keys, minimal lengths). */
export function encodeCanonical(value: unknown): Uint8Array {
  return encode(value);
}

/** Strictly decoded CBOR; throws {@link MalformedFrameError} on anything non-canonical or trailing. */
export function decodeStrict(bytes: Uint8Array): unknown {
  try {
    return decode(bytes, DECODE_OPTIONS);
  } catch (err) {
    throw new MalformedFrameError(`invalid CBOR: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * A codec whose wire form is the CBOR array `[version, message]`. The version is
 * checked before the schema so a newer peer gets a version error, not a vague
 * validation failure.
 */
export function createMessageCodec<S extends z.ZodType>(options: MessageCodecOptions<S>): MessageCodec<z.infer<S>> {
  const { version, schema } = options;
  const maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
  return {
    version,
    maxMessageBytes,
    encode(message) {
      const bytes = encodeCanonical([version, message]);
      if (bytes.byteLength > maxMessageBytes) throw new FrameTooLargeError(bytes.byteLength, maxMessageBytes);
      return bytes;
    },
    decode(bytes) {
      if (bytes.byteLength > maxMessageBytes) throw new FrameTooLargeError(bytes.byteLength, maxMessageBytes);
      const envelope = decodeStrict(bytes);
      if (!Array.isArray(envelope) || envelope.length !== 2) throw new MalformedFrameError("message envelope must be [version, body]");
      if (envelope[0] !== version) throw new UnsupportedVersionError(envelope[0], version);
      const parsed = schema.safeParse(envelope[1]);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue === undefined || issue.path.length === 0 ? "message" : issue.path.map(String).join(".");
        throw new MalformedFrameError(`invalid message at ${where}: ${issue?.message ?? "rejected"}`, { cause: parsed.error });
      }
      return parsed.data;
    },
  };
}
