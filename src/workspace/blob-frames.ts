import { InvalidInputError } from "../contract/errors.js";
import { CHUNK_SIZE } from "./manifest.js";

/**
 * Blobs in one body (`POST /v1/blobs`): each as its 32-byte SHA-256, its
 * length (4 bytes, big-endian, at most one chunk) and its bytes, one after
 * another. Thousands of small files go in one request this way, not one each.
 */

/** Digests asked about in one `POST /v1/blobs/missing`: a tree of this many files and more takes several. */
export const MAX_MISSING_QUERY = 100_000;

/** Largest body of blobs sent at once, bytes: a few chunks' worth, so that one request is not a long wait. */
export const MAX_BLOB_FRAMES_BYTES = 8 * 1024 * 1024;
const HEADER_BYTES = 36;

/** `blobs` as one body; the caller keeps it within {@link MAX_BLOB_FRAMES_BYTES} with {@link framedLength}. */
export function encodeBlobFrames(blobs: ReadonlyArray<readonly [digest: string, bytes: Uint8Array]>): Buffer {
  const out = Buffer.allocUnsafe(blobs.reduce((n, [, bytes]) => n + framedLength(bytes.byteLength), 0));
  let at = 0;
  for (const [digest, bytes] of blobs) {
    at += out.write(digest, at, "hex");
    at = out.writeUInt32BE(bytes.byteLength, at);
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}

/** Bytes a blob of `length` bytes takes in a body. */
export function framedLength(length: number): number {
  return HEADER_BYTES + length;
}

/**
 * The blobs of a body, as digest (lowercase hex) and bytes, not yet checked
 * against their digests. Refused, naming the frame, when a frame is cut short
 * or longer than a chunk.
 */
export function decodeBlobFrames(body: Uint8Array): Array<[digest: string, bytes: Uint8Array]> {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const out: Array<[string, Uint8Array]> = [];
  let at = 0;
  while (at < buf.length) {
    const field = `blobs[${out.length}]`;
    if (buf.length - at < HEADER_BYTES) throw new InvalidInputError(`the body ends ${buf.length - at} bytes into a frame's 36-byte header (at byte ${at})`, field);
    const digest = buf.toString("hex", at, at + 32);
    const length = buf.readUInt32BE(at + 32);
    if (length > CHUNK_SIZE) throw new InvalidInputError(`a blob of ${length} bytes is over the chunk size of ${CHUNK_SIZE}`, field);
    if (buf.length - at - HEADER_BYTES < length) throw new InvalidInputError(`the body ends before the ${length} bytes of blob ${digest}`, field);
    out.push([digest, buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length)]);
    at += HEADER_BYTES + length;
  }
  return out;
}
