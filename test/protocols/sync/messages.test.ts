import { encode } from "cborg";
import { describe, expect, it } from "vitest";
import { FrameTooLargeError, MalformedFrameError, UnsupportedVersionError } from "../../../protocols/framing/index.js";
import { createSyncCodec, SYNC_VERSION, type SyncMessage } from "../../../protocols/sync/index.js";

const head = "a".repeat(64);
const codec = createSyncCodec();

describe("sync protocol codec", () => {
  it("round-trips every message kind", () => {
    const messages: SyncMessage[] = [
      { t: "summary", prefix: "task/", count: 2, buckets: Array.from({ length: 256 }, () => head) },
      { t: "entries", prefix: "task/", buckets: [0, 255], entries: [{ id: "task/1", heads: [head] }], last: true },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array([4]), w: "12D3KooWexample", sig: new Uint8Array(64), at: 1, n: 2, proof: [new Uint8Array(32)] }] },
      { t: "want", items: [{ id: "audit/n/1", heads: [head] }] },
      { t: "have", items: [{ id: "task/1", heads: [head] }] },
      { t: "peers", peers: ["12D3KooWexample"] },
    ];
    for (const message of messages) expect(codec.decode(codec.encode(message))).toEqual(message);
  });

  it("refuses malformed heads, bucket counts, bucket numbers and unknown kinds", () => {
    const bad = [
      { t: "summary", prefix: "task/", count: 0, buckets: [head] },
      { t: "entries", prefix: "task/", buckets: [256], entries: [], last: true },
      { t: "want", items: [{ id: "task/1", heads: ["not-a-hash"] }] },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: "text, not bytes", w: "x", sig: new Uint8Array(64) }] },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array([4]), w: "x", sig: new Uint8Array(63), at: 0, n: 1, proof: [] }] },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array([4]), w: "x", sig: new Uint8Array(64), at: 0, n: 1, proof: [new Uint8Array(31)] }] },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array([4]), w: "x", sig: new Uint8Array(64), at: 0, n: 0, proof: [] }] },
      { t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array([4]) }] },
      // Automerge's own sync exchange is not part of the protocol any more: a document has one writer.
      { t: "docs", items: [{ id: "task/1", msg: new Uint8Array([1]) }] },
      { t: "gossip" },
      // An announcement names the heads it has, and a peer list is of device ids.
      { t: "have", items: [{ id: "task/1", heads: [] }] },
      { t: "peers", peers: [""] },
      { t: "peers", peers: Array.from({ length: 1025 }, (_, i) => `peer${i}`) },
    ];
    for (const body of bad) expect(() => codec.decode(encode([SYNC_VERSION, body]))).toThrow(MalformedFrameError);
  });

  it("refuses other protocol versions and oversize messages", () => {
    expect(() => codec.decode(encode([1, { t: "want", items: [] }]))).toThrow(UnsupportedVersionError);
    // Version 2 peers know neither announcements nor peer lists: they speak another protocol.
    expect(() => codec.decode(encode([2, { t: "want", items: [] }]))).toThrow(UnsupportedVersionError);
    const small = createSyncCodec(1024);
    expect(() => small.encode({ t: "patch", items: [{ id: "task/1", since: [], heads: [head], changes: new Uint8Array(2048), w: "x", sig: new Uint8Array(64), at: 0, n: 1, proof: [] }] })).toThrow(FrameTooLargeError);
  });
});
