import { encode } from "cborg";
import { describe, expect, it } from "vitest";
import { FrameTooLargeError, MalformedFrameError, UnsupportedVersionError } from "../../../protocols/framing/index.js";
import { createSyncCodec, type SyncMessage } from "../../../protocols/sync/index.js";

const head = "a".repeat(64);
const codec = createSyncCodec();

describe("sync protocol codec", () => {
  it("round-trips every message kind", () => {
    const messages: SyncMessage[] = [
      { t: "summary", prefix: "task/", count: 2, buckets: Array.from({ length: 256 }, () => head) },
      { t: "entries", prefix: "task/", buckets: [0, 255], entries: [{ id: "task/1", heads: [head] }], last: true },
      { t: "docs", items: [{ id: "task/1", msg: new Uint8Array([1, 2, 3]) }] },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array([4]) }] },
      { t: "want", items: [{ id: "audit/n/1", heads: [head] }] },
    ];
    for (const message of messages) expect(codec.decode(codec.encode(message))).toEqual(message);
  });

  it("refuses malformed heads, bucket counts, bucket numbers and unknown kinds", () => {
    const bad = [
      { t: "summary", prefix: "task/", count: 0, buckets: [head] },
      { t: "entries", prefix: "task/", buckets: [256], entries: [], last: true },
      { t: "want", items: [{ id: "task/1", heads: ["not-a-hash"] }] },
      { t: "docs", items: [{ id: "task/1", msg: "text, not bytes" }] },
      { t: "gossip" },
    ];
    for (const body of bad) expect(() => codec.decode(encode([1, body]))).toThrow(MalformedFrameError);
  });

  it("refuses other protocol versions and oversize messages", () => {
    expect(() => codec.decode(encode([2, { t: "want", items: [] }]))).toThrow(UnsupportedVersionError);
    const small = createSyncCodec(1024);
    expect(() => small.encode({ t: "docs", items: [{ id: "task/1", msg: new Uint8Array(2048) }] })).toThrow(FrameTooLargeError);
  });
});
