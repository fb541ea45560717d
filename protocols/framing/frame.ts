import { FrameTooLargeError, MalformedFrameError } from "./errors.js";

/** Longest varint a frame header may use: 5 bytes cover any 32-bit length. */
const MAX_VARINT_BYTES = 5;

/** Bytes the unsigned LEB128 varint of `n` takes. */
export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** `body` prefixed with its length as an unsigned LEB128 varint, in one buffer. */
export function encodeFrame(body: Uint8Array, maxFrameBytes: number): Uint8Array {
  if (body.byteLength > maxFrameBytes) throw new FrameTooLargeError(body.byteLength, maxFrameBytes);
  const out = new Uint8Array(varintLength(body.byteLength) + body.byteLength);
  let n = body.byteLength;
  let i = 0;
  while (n >= 0x80) {
    out[i++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i++] = n;
  out.set(body, i);
  return out;
}

/**
 * Incremental decoder of length-prefixed frames. Bytes arrive in arbitrary
 * chunks; the declared length is checked against the limit as soon as the header
 * is complete, so an oversize frame is refused before any of its body is held.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #headerValue = 0;
  #headerBytes = 0;
  #body: Uint8Array | undefined;
  #filled = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** True while a frame has started but not completed (header or body bytes pending). */
  get partial(): boolean {
    return this.#headerBytes > 0 || this.#body !== undefined;
  }

  /**
   * Consume a chunk; returns the frames it completed, each in a buffer of its
   * own that the decoder never touches again (a codec may hand out views of it).
   * Throws on an oversize or invalid header.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let i = 0;
    while (i < chunk.byteLength) {
      if (this.#body === undefined) {
        const byte = chunk[i++] as number;
        this.#headerValue += (byte & 0x7f) * 2 ** (7 * this.#headerBytes);
        this.#headerBytes++;
        if (byte & 0x80) {
          if (this.#headerBytes >= MAX_VARINT_BYTES) throw new MalformedFrameError("frame length varint is too long");
          continue;
        }
        const length = this.#headerValue;
        this.#headerValue = 0;
        this.#headerBytes = 0;
        if (length > this.#maxFrameBytes) throw new FrameTooLargeError(length, this.#maxFrameBytes);
        if (length === 0) {
          frames.push(new Uint8Array(0));
          continue;
        }
        this.#body = new Uint8Array(length);
        this.#filled = 0;
        continue;
      }
      const take = Math.min(this.#body.byteLength - this.#filled, chunk.byteLength - i);
      this.#body.set(chunk.subarray(i, i + take), this.#filled);
      this.#filled += take;
      i += take;
      if (this.#filled === this.#body.byteLength) {
        frames.push(this.#body);
        this.#body = undefined;
      }
    }
    return frames;
  }
}
