import type { Stream } from "@libp2p/interface";
import { encode } from "cborg";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { MeshLibp2p } from "../../../node/libp2p/create-libp2p.js";
import {
  ChannelPool,
  createMessageCodec,
  createPeerRateLimiter,
  encodeFrame,
  FrameTimeoutError,
  FrameTooLargeError,
  FramedChannel,
  FramingError,
  handleFramed,
  MalformedFrameError,
  PeerLimitError,
  UnsupportedVersionError,
} from "../../../protocols/framing/index.js";
import { connectAll, eventually, startNodes, stopAll } from "../../node/helpers.js";
import { countTurns, mostPerTurn } from "../../helpers/turns.js";

const PROTOCOL = "/coderclaw/test-echo/1.0.0";
const schema = z.object({ n: z.number().int(), pad: z.string().optional() });
type Msg = z.infer<typeof schema>;
const codec = createMessageCodec({ version: 1, schema, maxMessageBytes: 512 * 1024 });

let nodes: MeshLibp2p[] = [];
afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

/** Node 0 serves echo; errors from misbehaving peers are collected. */
async function setup(settings: { frameTimeoutMs?: number; framesPerSecond?: number } = {}) {
  nodes = await startNodes(3);
  await connectAll(nodes);
  const [server, honest, attacker] = nodes as [MeshLibp2p, MeshLibp2p, MeshLibp2p];
  const errors: Array<{ peer: string; error: Error }> = [];
  const limiter = createPeerRateLimiter({ framesPerSecond: settings.framesPerSecond ?? 10_000, burst: settings.framesPerSecond ?? 10_000 });
  await handleFramed<Msg>(server, PROTOCOL, {
    codec,
    settings: { frameTimeoutMs: settings.frameTimeoutMs ?? 5_000, limiter },
    accept: () => true,
    onError: (peer, error) => errors.push({ peer, error }),
    onChannel: (channel) => {
      void (async () => {
        try {
          for await (const msg of channel) await channel.send(msg);
        } catch {
          // The failure is reported through onError.
        }
      })();
    },
  });
  const pool = new ChannelPool<Msg>({ libp2p: honest, protocol: PROTOCOL, codec });
  return { server, honest, attacker, errors, pool };
}

async function rawStream(from: MeshLibp2p, to: MeshLibp2p): Promise<Stream> {
  return from.dialProtocol(to.peerId, PROTOCOL);
}

async function assertStillServes(pool: ChannelPool<Msg>, server: MeshLibp2p): Promise<void> {
  const channel = await pool.get(server.peerId);
  await channel.send({ n: 42 });
  expect(await channel.receive({ timeoutMs: 5_000 })).toEqual({ n: 42 });
}

function protocolStreams(node: MeshLibp2p, peer: MeshLibp2p): number {
  return node.getConnections(peer.peerId).flatMap((c) => c.streams).filter((s) => s.protocol === PROTOCOL).length;
}

describe("framed channel over libp2p", () => {
  it("ends at once on a stream that was refused before it was handed over, and fails sends instead of hanging", async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [server, client] = nodes as [MeshLibp2p, MeshLibp2p];
    await handleFramed<Msg>(server, PROTOCOL, { codec, accept: () => false, onChannel: () => undefined });
    const stream = await client.dialProtocol(server.peerId, PROTOCOL);
    await eventually(() => stream.status !== "open", 5_000, "the refusal to arrive");
    const channel = new FramedChannel<Msg>({ stream, codec, peer: server.peerId.toString() });
    expect(channel.closed).toBe(true);
    await expect(channel.send({ n: 1 })).rejects.toBeInstanceOf(FramingError);
    await expect(channel.receive()).rejects.toThrow(/reset before the channel was set up/);
  });

  it("reuses one stream for many round trips", async () => {
    const { server, honest, pool } = await setup();
    for (let n = 0; n < 200; n++) {
      const channel = await pool.get(server.peerId);
      await channel.send({ n });
      expect(await channel.receive({ timeoutMs: 5_000 })).toEqual({ n });
    }
    expect(protocolStreams(honest, server)).toBe(1);
    await pool.close();
  });

  it("sends the first message of a turn at once and the rest of the turn in one stream write, in order, and flushes them on close", async () => {
    const { server, pool } = await setup();
    const channel = await pool.get(server.peerId);
    const writes: number[] = [];
    const send = channel.stream.send.bind(channel.stream);
    channel.stream.send = (data) => {
      writes.push(data.byteLength);
      return send(data);
    };
    // 300 small messages and, among them, two too large to be joined with the rest (64 KiB each way).
    const big = "y".repeat(70 * 1024);
    const sent = Array.from({ length: 300 }, (_, n) => channel.send(n === 100 || n === 200 ? { n, pad: big } : { n }));
    await Promise.all(sent);
    // The first message leaves at once, alone; the rest of the turn follows in as few writes as the size cap allows.
    expect(writes[0]).toBe(encodeFrame(codec.encode({ n: 0 }), 1024).byteLength);
    expect(writes.length).toBeLessThanOrEqual(6);
    for (let n = 0; n < 300; n++) expect((await channel.receive({ timeoutMs: 5_000 })).n).toBe(n);

    writes.length = 0;
    const last = channel.send({ n: 1000 });
    await channel.close();
    await last;
    expect(writes).toHaveLength(1);
    await pool.close();
  });

  it("delivers large volumes in order under backpressure", async () => {
    const { server, pool } = await setup();
    const channel = await pool.get(server.peerId);
    const pad = "x".repeat(200 * 1024);
    const count = 100;
    const sending = (async () => {
      for (let n = 0; n < count; n++) await channel.send({ n, pad });
    })();
    for (let n = 0; n < count; n++) {
      const msg = await channel.receive({ timeoutMs: 10_000 });
      expect(msg.n).toBe(n);
      if (n % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await sending;
    await pool.close();
  });

  it("times out a receive without closing the channel", async () => {
    const { server, pool } = await setup();
    const channel = await pool.get(server.peerId);
    await expect(channel.receive({ timeoutMs: 50 })).rejects.toBeInstanceOf(FrameTimeoutError);
    await channel.send({ n: 1 });
    expect(await channel.receive({ timeoutMs: 5_000 })).toEqual({ n: 1 });
    await pool.close();
  });

  it("cuts off an oversize frame and keeps serving others", async () => {
    const { server, attacker, errors, pool } = await setup();
    const stream = await rawStream(attacker, server);
    stream.send(new Uint8Array([0xff, 0xff, 0xff, 0x7f]));
    await eventually(() => errors.length > 0, 5_000, "oversize error");
    expect(errors[0]?.error).toBeInstanceOf(FrameTooLargeError);
    expect(errors[0]?.peer).toBe(attacker.peerId.toString());
    await eventually(() => stream.status !== "open", 5_000, "attacker stream reset");
    await assertStillServes(pool, server);
    await pool.close();
  });

  it("cuts off malformed CBOR and unknown versions", async () => {
    const { server, attacker, errors, pool } = await setup();
    const garbage = await rawStream(attacker, server);
    garbage.send(encodeFrame(new Uint8Array([0xff, 0x00, 0x13]), 1024));
    await eventually(() => errors.length === 1, 5_000, "malformed error");
    const future = await rawStream(attacker, server);
    future.send(encodeFrame(encode([2, { n: 1 }]), 1024));
    await eventually(() => errors.length === 2, 5_000, "version error");
    expect(errors[0]?.error).toBeInstanceOf(MalformedFrameError);
    expect(errors[1]?.error).toBeInstanceOf(UnsupportedVersionError);
    await assertStillServes(pool, server);
    await pool.close();
  });

  it("cuts off a peer stalled mid-frame", async () => {
    const { server, attacker, errors, pool } = await setup({ frameTimeoutMs: 200 });
    const stream = await rawStream(attacker, server);
    stream.send(encodeFrame(encode([1, { n: 1, pad: "x".repeat(100) }]), 1024).subarray(0, 20));
    await eventually(() => errors.length > 0, 5_000, "stall timeout");
    expect(errors[0]?.error).toBeInstanceOf(FrameTimeoutError);
    await assertStillServes(pool, server);
    await pool.close();
  });

  it("cuts off a flooding peer while another peer keeps being served", async () => {
    const { server, attacker, errors, pool } = await setup({ framesPerSecond: 200 });
    const flood = await rawStream(attacker, server);
    const frame = encodeFrame(codec.encode({ n: 0 }), 1024);
    const burst = new Uint8Array(frame.byteLength * 1000);
    for (let i = 0; i < 1000; i++) burst.set(frame, i * frame.byteLength);
    flood.send(burst);
    await eventually(() => errors.length > 0, 5_000, "flood cut-off");
    expect(errors[0]?.error).toBeInstanceOf(PeerLimitError);
    expect((errors[0]?.error as FramingError).reason).toBe("limit");
    await assertStillServes(pool, server);
    await pool.close();
  });
});

describe("framed channel delivery", () => {
  const BURST_PROTOCOL = "/coderclaw/test-burst/1.0.0";

  /** Node 0 reads each channel with `read` and reports what it returns. */
  async function burstServer<R>(read: (channel: FramedChannel<Msg>) => Promise<R>): Promise<{ client: MeshLibp2p; server: MeshLibp2p; result: Promise<R> }> {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const [server, client] = nodes as [MeshLibp2p, MeshLibp2p];
    let deliver!: (r: R) => void;
    const result = new Promise<R>((resolve) => (deliver = resolve));
    await handleFramed<Msg>(server, BURST_PROTOCOL, { codec, settings: { messagesPerTurn: 8 }, accept: () => true, onChannel: (channel) => void read(channel).then(deliver) });
    return { client, server, result };
  }

  /** `count` frames in one stream write, then the stream's write side closed. */
  async function sendBurst(client: MeshLibp2p, server: MeshLibp2p, count: number, close: boolean): Promise<void> {
    const stream = await client.dialProtocol(server.peerId, BURST_PROTOCOL);
    const frames = Array.from({ length: count }, (_, n) => encodeFrame(codec.encode({ n }), 1024));
    stream.send(Buffer.concat(frames));
    if (close) await stream.close();
  }

  it("hands a burst to its reader a few messages per turn of the event loop, in order", async () => {
    const { client, server, result } = await burstServer(async (channel) => {
      // Let the whole burst arrive and queue up before reading.
      await new Promise((r) => setTimeout(r, 300));
      const turns = countTurns();
      const seen: Array<{ n: number; turn: number }> = [];
      for (let i = 0; i < 50; i++) seen.push({ n: (await channel.receive()).n, turn: turns.now });
      turns.stop();
      return seen;
    });
    await sendBurst(client, server, 50, false);
    const seen = await result;
    expect(seen.map((s) => s.n)).toEqual(Array.from({ length: 50 }, (_, n) => n));
    const turns = seen.map((s) => s.turn);
    expect(mostPerTurn(turns)).toBeLessThanOrEqual(8);
    expect(new Set(turns).size).toBeGreaterThanOrEqual(7);
  });

  it("delivers every held message of a channel the remote has closed before ending it", async () => {
    const { client, server, result } = await burstServer(async (channel) => {
      await new Promise((r) => setTimeout(r, 300));
      const got: number[] = [];
      for await (const m of channel) got.push(m.n);
      return got;
    });
    await sendBurst(client, server, 40, true);
    expect(await result).toEqual(Array.from({ length: 40 }, (_, n) => n));
  });
});
