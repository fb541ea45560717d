import type { Manifest, ManifestEntry } from "./manifest.js";

/**
 * Writes the canonical CBOR of a manifest (the bytes identity/canonical.ts's
 * encodeCanonical gives for it) directly: the shape is fixed, so the map keys
 * are written in their canonical order (shorter first, then bytewise) without
 * sorting each entry's keys again, which takes a tree of tens of thousands of
 * files from a large share of a snapshot's time to a small one. Tests hold
 * the two encoders to the same bytes.
 */
export function writeManifestCbor(manifest: Manifest): Uint8Array {
  const out = new EntryWriter(sizeBound(manifest.entries));
  for (const entry of manifest.entries) out.entry(entry);
  return wrapEntriesCbor(manifest.entries.length, out.view(), manifest.version);
}

/** The canonical manifest of `count` entries whose encodings are `body` (as an {@link EntryWriter} wrote them). */
export function wrapEntriesCbor(count: number, body: Uint8Array, version: number): Uint8Array {
  const out = new Writer(body.byteLength + 32);
  out.head(5, 2);
  out.text("entries");
  out.head(4, count);
  out.raw(body);
  out.text("version");
  out.head(0, version);
  return out.bytes();
}

// At most 3 UTF-8 bytes per UTF-16 unit, 9 per head, 67 per digest and the
// keys' own bytes: the writer never has to grow and copy what it wrote.
function sizeBound(entries: readonly ManifestEntry[]): number {
  let bound = 32;
  for (const entry of entries) {
    bound += 64 + 3 * entry.path.length + (entry.kind === "file" ? 67 * entry.chunks.length : 3 * entry.target.length);
  }
  return bound;
}

class Writer {
  private buffer: Buffer;
  private length = 0;

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  get size(): number {
    return this.length;
  }

  /** Starts again from no bytes, keeping the buffer (what {@link view} gave before is overwritten). */
  clear(): void {
    this.length = 0;
  }

  raw(bytes: Uint8Array): void {
    this.reserve(bytes.byteLength);
    this.buffer.set(bytes, this.length);
    this.length += bytes.byteLength;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  /** A CBOR head: major type and argument in its shortest form. */
  head(major: number, argument: number): void {
    this.reserve(9);
    const type = major << 5;
    if (argument < 24) {
      this.buffer[this.length++] = type | argument;
    } else if (argument < 0x100) {
      this.buffer[this.length++] = type | 24;
      this.buffer[this.length++] = argument;
    } else if (argument < 0x10000) {
      this.buffer[this.length++] = type | 25;
      this.length = this.buffer.writeUInt16BE(argument, this.length);
    } else if (argument < 0x100000000) {
      this.buffer[this.length++] = type | 26;
      this.length = this.buffer.writeUInt32BE(argument, this.length);
    } else {
      this.buffer[this.length++] = type | 27;
      this.length = this.buffer.writeBigUInt64BE(BigInt(argument), this.length);
    }
  }

  text(value: string): void {
    // Short ASCII strings (keys, digests, most paths) are copied here: two
    // calls into C++ per string cost more than the copy. Anything else, or a
    // string that turns out not to be ASCII, is written by Buffer.
    if (value.length < 128) {
      // Room for the head too, so writing it cannot move the bytes copied first.
      this.reserve(value.length + 11);
      const start = this.length;
      let at = start + (value.length < 24 ? 1 : 2);
      let ascii = true;
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) {
          ascii = false;
          break;
        }
        this.buffer[at++] = c;
      }
      if (ascii) {
        this.head(3, value.length);
        this.length = at;
        return;
      }
    }
    const size = Buffer.byteLength(value, "utf8");
    this.head(3, size);
    this.reserve(size);
    this.length += this.buffer.write(value, this.length, "utf8");
  }

  bytes(): Uint8Array {
    return this.view().slice();
  }

  /** The bytes written, without copying them (they share the writer's buffer). */
  view(): Uint8Array {
    return new Uint8Array(this.buffer.buffer, this.buffer.byteOffset, this.length);
  }
}

/** Entries' encodings written one after another, growing as needed: what a manifest holds between its head and its tail. */
export class EntryWriter extends Writer {
  /** Writes `entry`'s encoding; answers the bytes written so far. */
  entry(entry: ManifestEntry): number {
    if (entry.kind === "file") {
      this.head(5, 5);
      this.text("kind");
      this.text("file");
      this.text("path");
      this.text(entry.path);
      this.text("size");
      this.head(0, entry.size);
      this.text("chunks");
      this.head(4, entry.chunks.length);
      for (const digest of entry.chunks) this.text(digest);
      this.text("executable");
      this.byte(entry.executable ? 0xf5 : 0xf4);
    } else {
      this.head(5, 3);
      this.text("kind");
      this.text("symlink");
      this.text("path");
      this.text(entry.path);
      this.text("target");
      this.text(entry.target);
    }
    return this.size;
  }
}
