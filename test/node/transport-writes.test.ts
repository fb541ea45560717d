import net from "node:net";
import type { Stream } from "@libp2p/interface";
import { afterEach, describe, expect, it } from "vitest";
import { RAW_ECHO_PROTOCOL, rawRoundTrips, serveRawEcho } from "../../bench/raw-echo.js";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { connect, eventually, startNodes, stopAll } from "./helpers.js";

// What the two patches in patches/ change, measured on real sockets: @libp2p/tcp writes a frame that the
// encrypter hands over as several buffers in one socket write, and yamux tops a stream's receive window up
// once half of it is consumed instead of after every data frame.

const SINK = "/test/sink/1.0.0";

let nodes: MeshLibp2p[] = [];
let restore: (() => void) | undefined;
afterEach(async () => {
  restore?.();
  restore = undefined;
  await stopAll(nodes);
  nodes = [];
});

/** Counts socket writes from now on, per local port; `restore` puts `Socket.write` back. */
function countWrites(): Map<number, number> {
  const counts = new Map<number, number>();
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
    counts.set(this.localPort ?? -1, (counts.get(this.localPort ?? -1) ?? 0) + 1);
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  };
  restore = () => {
    net.Socket.prototype.write = write;
  };
  return counts;
}

const total = (counts: Map<number, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);

function listenPort(node: MeshLibp2p): number {
  const port = node.getMultiaddrs()[0]?.getComponents().find((c) => c.name === "tcp")?.value;
  if (port === undefined) throw new Error("node has no TCP listen address");
  return Number(port);
}

async function pair(): Promise<[MeshLibp2p, MeshLibp2p]> {
  nodes = await startNodes(2);
  const [a, b] = nodes as [MeshLibp2p, MeshLibp2p];
  await connect(a, b);
  return [a, b];
}

describe("libp2p transport writes", () => {
  it("costs one socket write per message each way on a round trip, window updates included", async () => {
    const [a, b] = await pair();
    await serveRawEcho(b);
    const stream = await a.dialProtocol(b.peerId, RAW_ECHO_PROTOCOL);
    await rawRoundTrips(stream, 20);

    const counts = countWrites();
    const trips = 300;
    await rawRoundTrips(stream, trips);
    restore?.();
    // Unpatched: a length-prefix write and a ciphertext write per frame, and a window-update frame answering each
    // data frame, 8 writes per round trip. A few writes of background protocols (identify, ping) may fall inside.
    expect(total(counts)).toBeGreaterThanOrEqual(2 * trips);
    expect(total(counts)).toBeLessThan(2 * trips + 20);
  });

  it("has a receiver send window updates only as each half of its window is consumed", async () => {
    const [a, b] = await pair();
    const size = 1 << 20;
    let received = 0;
    const all = new Promise<void>((resolve) => {
      void b.handle(SINK, (stream) => {
        stream.addEventListener("message", (event) => {
          received += event.data.byteLength;
          if (received === size) resolve();
        });
      });
    });
    const stream = await a.dialProtocol(b.peerId, SINK);
    const counts = countWrites();
    for (let sent = 0; sent < size; sent += 1024) stream.send(new Uint8Array(1024));
    await all;
    restore?.();
    // The receiver writes nothing but window updates here: 1 MiB through a 256 KiB window that may double as it
    // drains, so a handful, against one per 1 KiB message (1,024) unpatched.
    const receiverWrites = counts.get(listenPort(b)) ?? 0;
    expect(receiverWrites).toBeGreaterThan(0);
    expect(receiverWrites).toBeLessThan(16);
  });

  it("stops a sender at the window of a paused reader and lets it finish on resume", async () => {
    const [a, b] = await pair();
    const size = 2 << 20;
    let received = 0;
    let sink: Stream | undefined;
    await b.handle(SINK, (stream) => {
      sink = stream;
      stream.pause();
      stream.addEventListener("message", (event) => {
        received += event.data.byteLength;
      });
    });
    const stream = await a.dialProtocol(b.peerId, SINK);
    for (let sent = 0; sent < size; sent += 1024) stream.send(new Uint8Array(1024));
    await eventually(() => sink !== undefined, 5_000, "inbound stream");
    const window = 256 * 1024;
    await eventually(() => sink!.readBufferLength >= window - 1024, 5_000, "a window's worth buffered");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toBe(0);
    // Yamux's first window is all the sender may put on the wire; the rest waits in its write buffer.
    expect(sink!.readBufferLength).toBeLessThanOrEqual(window);
    expect(stream.writeBufferLength).toBeGreaterThanOrEqual(size - window);
    sink!.resume();
    await eventually(() => received === size, 10_000, "all bytes after resume");
  });
});
