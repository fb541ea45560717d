import { encode } from "cborg";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  createMessageCodec,
  createPeerRateLimiter,
  encodeFrame,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
  UnsupportedVersionError,
} from "../../../protocols/framing/index.js";

const codec = createMessageCodec({ version: 1, schema: z.object({ n: z.number().int(), s: z.string() }), maxMessageBytes: 1024 });

describe("frame decoder", () => {
  it("reassembles frames split at every byte and several frames in one chunk", () => {
    const a = encodeFrame(new Uint8Array(300).fill(7), 1024);
    const b = encodeFrame(new Uint8Array([1, 2, 3]), 1024);
    const all = new Uint8Array([...a, ...b, ...a]);
    const decoder = new FrameDecoder(1024);
    const frames: Uint8Array[] = [];
    for (const byte of all) frames.push(...decoder.push(new Uint8Array([byte])));
    expect(frames.map((f) => f.byteLength)).toEqual([300, 3, 300]);
    expect(decoder.partial).toBe(false);
    expect(new FrameDecoder(1024).push(all).map((f) => f.byteLength)).toEqual([300, 3, 300]);
  });

  it("refuses an oversize frame from its header alone", () => {
    const header = encodeFrame(new Uint8Array(5000), 10_000).subarray(0, 2);
    expect(() => new FrameDecoder(1024).push(header)).toThrow(FrameTooLargeError);
  });

  it("refuses a length varint longer than 5 bytes", () => {
    expect(() => new FrameDecoder(1024).push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toThrow(MalformedFrameError);
  });
});

describe("message codec", () => {
  it("round-trips and is canonical", () => {
    const bytes = codec.encode({ s: "x", n: 1 });
    expect(codec.decode(bytes)).toEqual({ n: 1, s: "x" });
    expect(codec.encode({ n: 1, s: "x" })).toEqual(bytes);
  });

  it("refuses unknown versions before validating the body", () => {
    expect(() => codec.decode(encode([2, { whatever: true }]))).toThrow(UnsupportedVersionError);
  });

  it("refuses schema violations, naming the field", () => {
    expect(() => codec.decode(encode([1, { n: "one", s: "x" }]))).toThrow(/at n/);
  });

  it("refuses duplicate keys, indefinite lengths, trailing bytes and garbage", () => {
    const duplicate = new Uint8Array([0x82, 0x01, 0xa2, 0x61, 0x6e, 0x01, 0x61, 0x6e, 0x02]);
    const indefinite = new Uint8Array([0x9f, 0x01, 0xff]);
    const trailing = new Uint8Array([...encode([1, { n: 1, s: "x" }]), 0x00]);
    for (const bad of [duplicate, indefinite, trailing, new Uint8Array([0xff, 0xfe]), new Uint8Array(0)]) {
      expect(() => codec.decode(bad)).toThrow(MalformedFrameError);
    }
  });

  it("refuses to encode or decode past the size limit", () => {
    expect(() => codec.encode({ n: 1, s: "x".repeat(2000) })).toThrow(FrameTooLargeError);
    expect(() => codec.decode(new Uint8Array(2000))).toThrow(FrameTooLargeError);
  });
});

describe("peer rate limiter", () => {
  it("allows a burst, then the sustained rate, per peer", () => {
    let t = 0;
    const limiter = createPeerRateLimiter({ framesPerSecond: 10, burst: 3, now: () => t });
    expect([1, 2, 3, 4].map(() => limiter.take("a"))).toEqual([true, true, true, false]);
    expect(limiter.take("b")).toBe(true);
    t += 100;
    expect(limiter.take("a")).toBe(true);
    expect(limiter.take("a")).toBe(false);
  });
});
