/**
 * The canonical CBOR of a blob-protocol `data` message, written and read by
 * hand. Each chunk of a large blob, and each blob sent from an offset, is one
 * `data` message (small whole blobs go several to a `run`), and the generic
 * codec (cborg, then the schema) cost tens of microseconds for each; this is
 * a few. The bytes are exactly those the generic codec writes, so nothing
 * changes on the wire: `[version, {d, t, off, rid, size, bytes}]`, map
 * keys in canonical order (shorter first, then bytewise), every length and
 * integer in its shortest form. {@link readDataMessage} takes only that exact
 * shape with valid fields and answers undefined for anything else, which the
 * generic codec then decodes or refuses as before.
 */

/** The fields of a `data` message. */
export interface DataFields {
  t: "data";
  rid: number;
  d: string;
  off: number;
  size: number;
  bytes: Uint8Array;
}

/** Bounds the schema puts on the fields; a message outside them goes to the generic codec. */
export interface DataLimits {
  version: number;
  maxOff: number;
  maxBytes: number;
}

const TWO_32 = 2 ** 32;
const ASCII = new TextEncoder();

// [version, {  "d": text(64)  ...
const KEY_D = [0x61, 0x64];
const DIGEST_HEAD = [0x78, 0x40];
// "t": "data"
const T_DATA = [0x61, 0x74, 0x64, 0x64, 0x61, 0x74, 0x61];
const KEY_OFF = [0x63, 0x6f, 0x66, 0x66];
const KEY_RID = [0x63, 0x72, 0x69, 0x64];
const KEY_SIZE = [0x64, 0x73, 0x69, 0x7a, 0x65];
const KEY_BYTES = [0x65, 0x62, 0x79, 0x74, 0x65, 0x73];

/** Bytes of the shortest head of major type `major` for `n`. */
function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < TWO_32 ? 5 : 9;
}

function writeHead(out: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[at] = m | n;
    return at + 1;
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (n < 0x100) {
    out[at] = m | 24;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = m | 25;
    view.setUint16(at + 1, n);
    return at + 3;
  }
  if (n < TWO_32) {
    out[at] = m | 26;
    view.setUint32(at + 1, n);
    return at + 5;
  }
  out[at] = m | 27;
  view.setUint32(at + 1, Math.floor(n / TWO_32));
  view.setUint32(at + 5, n % TWO_32);
  return at + 9;
}

function put(out: Uint8Array, at: number, bytes: readonly number[]): number {
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i]!;
  return at + bytes.length;
}

/** The canonical CBOR of `[version, m]`. */
export function writeDataMessage(version: number, m: DataFields): Uint8Array {
  const n = m.bytes.byteLength;
  const length =
    1 + headLength(version) + 1 + KEY_D.length + DIGEST_HEAD.length + 64 + T_DATA.length +
    KEY_OFF.length + headLength(m.off) + KEY_RID.length + headLength(m.rid) + KEY_SIZE.length + headLength(m.size) +
    KEY_BYTES.length + headLength(n) + n;
  const out = new Uint8Array(length);
  out[0] = 0x82;
  let at = writeHead(out, 1, 0, version);
  out[at++] = 0xa6;
  at = put(out, at, KEY_D);
  at = put(out, at, DIGEST_HEAD);
  ASCII.encodeInto(m.d, out.subarray(at, at + 64));
  at += 64;
  at = put(out, at, T_DATA);
  at = writeHead(out, put(out, at, KEY_OFF), 0, m.off);
  at = writeHead(out, put(out, at, KEY_RID), 0, m.rid);
  at = writeHead(out, put(out, at, KEY_SIZE), 0, m.size);
  at = writeHead(out, put(out, at, KEY_BYTES), 2, n);
  out.set(m.bytes, at);
  return out;
}

/** Reads canonical CBOR heads and fixed bytes from a frame; any mismatch is a miss, not an error. */
class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  expect(fixed: readonly number[]): boolean {
    if (this.at + fixed.length > this.bytes.byteLength) return false;
    for (let i = 0; i < fixed.length; i++) if (this.bytes[this.at + i] !== fixed[i]) return false;
    this.at += fixed.length;
    return true;
  }

  /** The argument of a head of major type `major` in its shortest form, or -1. */
  head(major: number): number {
    const first = this.bytes[this.at];
    if (first === undefined || first >> 5 !== major) return -1;
    const info = first & 0x1f;
    const size = info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1;
    if (size < 0 || this.at + 1 + size > this.bytes.byteLength) return -1;
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.at + 1, size);
    const n = size === 0 ? info : size === 1 ? view.getUint8(0) : size === 2 ? view.getUint16(0) : size === 4 ? view.getUint32(0) : view.getUint32(0) * TWO_32 + view.getUint32(4);
    // Shortest form only, as the strict decoder demands; and no integer past what a double holds exactly.
    if (size === 8 && view.getUint32(0) >= 0x200000) return -1;
    if (headLength(n) !== 1 + size) return -1;
    this.at += 1 + size;
    return n;
  }
}

function isLowerHexDigest(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + 64; i++) {
    const c = bytes[i]!;
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** The `data` message in `frame` if it is exactly the canonical shape with fields within `limits`; undefined otherwise. */
export function readDataMessage(frame: Uint8Array, limits: DataLimits): DataFields | undefined {
  const r = new Reader(frame);
  if (!r.expect([0x82]) || r.head(0) !== limits.version || !r.expect([0xa6]) || !r.expect(KEY_D) || !r.expect(DIGEST_HEAD)) return undefined;
  if (r.at + 64 > frame.byteLength || !isLowerHexDigest(frame, r.at)) return undefined;
  const d = Buffer.from(frame.buffer, frame.byteOffset + r.at, 64).toString("latin1");
  r.at += 64;
  if (!r.expect(T_DATA) || !r.expect(KEY_OFF)) return undefined;
  const off = r.head(0);
  if (off < 0 || off > limits.maxOff || !r.expect(KEY_RID)) return undefined;
  const rid = r.head(0);
  if (rid < 1 || rid > Number.MAX_SAFE_INTEGER || !r.expect(KEY_SIZE)) return undefined;
  const size = r.head(0);
  if (size < 0 || size > limits.maxOff || !r.expect(KEY_BYTES)) return undefined;
  const n = r.head(2);
  if (n < 0 || n > limits.maxBytes || r.at + n !== frame.byteLength) return undefined;
  // A view, not a copy: each frame is a buffer of its own (FrameDecoder makes one per frame), used for nothing but this message, and a copy into fresh memory cost more than the bytes' hashing.
  return { t: "data", rid, d, off, size, bytes: frame.subarray(r.at, r.at + n) };
}
