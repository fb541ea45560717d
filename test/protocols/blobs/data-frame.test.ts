import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMessageCodec } from "../../../protocols/framing/codec.js";
import { BLOB_CHUNK_BYTES, BLOBS_PROTOCOL_VERSION, blobsMessageSchema, createBlobsCodec, MAX_BLOBS_MESSAGE_BYTES, type BlobsMessage } from "../../../protocols/blobs/messages.js";
import { MAX_TREE_BYTES } from "../../../src/workspace/blob-store.js";

/** The generic codec alone: what the blob protocol's codec was before `data` frames had their own path. */
const generic = createMessageCodec({ version: BLOBS_PROTOCOL_VERSION, schema: blobsMessageSchema, maxMessageBytes: MAX_BLOBS_MESSAGE_BYTES });
const codec = createBlobsCodec();

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const count = (max: number) => fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max }));
const data = fc.record({
  t: fc.constant("data" as const),
  rid: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
  d: hex,
  off: count(MAX_TREE_BYTES),
  size: count(MAX_TREE_BYTES),
  bytes: fc.oneof(fc.uint8Array({ maxLength: 30 }), fc.uint8Array({ minLength: 250, maxLength: 70_000 })),
});

describe("blob protocol data frames", () => {
  it("are written byte for byte as the generic codec writes them, and read back to the same message", () => {
    fc.assert(
      fc.property(data, (m) => {
        const mine = codec.encode(m);
        expect(Buffer.from(mine).equals(Buffer.from(generic.encode(m)))).toBe(true);
        expect(codec.decode(mine)).toEqual(generic.decode(mine));
      }),
      { numRuns: 300 },
    );
  });

  it("refuse what the generic codec refuses: a field out of bounds, a bad digest, a longer form, trailing bytes", () => {
    const m: BlobsMessage = { t: "data", rid: 7, d: "a".repeat(64), off: 0, size: 3, bytes: new Uint8Array([1, 2, 3]) };
    const good = codec.encode(m);
    const variants: Uint8Array[] = [
      generic.encode({ ...m, d: "A".repeat(64) }),
      generic.encode({ ...m, rid: 0 }),
      generic.encode({ ...m, off: MAX_TREE_BYTES + 1 }),
      generic.encode({ ...m, bytes: new Uint8Array(BLOB_CHUNK_BYTES + 1) }),
      Buffer.concat([good, Buffer.from([0])]),
      // rid 7 written as 0x18 0x07, the two-byte form of a number that fits in one.
      Buffer.concat([good.subarray(0, good.indexOf(0x07, 80)), Buffer.from([0x18, 0x07]), good.subarray(good.indexOf(0x07, 80) + 1)]),
    ];
    for (const frame of variants) expect(() => codec.decode(frame)).toThrow();
  });

  it("reads a frame cut short as the generic codec does: refused", () => {
    const frame = codec.encode({ t: "data", rid: 1, d: "b".repeat(64), off: 0, size: 100, bytes: new Uint8Array(100) });
    for (const cut of [1, 10, 80, frame.byteLength - 1]) expect(() => codec.decode(frame.subarray(0, cut))).toThrow();
  });
});
