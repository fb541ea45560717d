import type { Libp2p, Stream } from "@libp2p/interface";

/** Bare echo protocol: the raw round-trip baseline on an open libp2p stream. */
export const RAW_ECHO_PROTOCOL = "/bench/raw/1.0.0";

/** Echo every message back on its stream. */
export async function serveRawEcho(libp2p: Libp2p): Promise<void> {
  await libp2p.handle(RAW_ECHO_PROTOCOL, (stream) => {
    stream.addEventListener("message", (e) => {
      stream.send(e.data);
    });
  });
}

/** `count` round trips of 32 bytes, one at a time, on an open echo stream; each in ms. */
export async function rawRoundTrips(stream: Stream, count: number): Promise<number[]> {
  let echoed: (() => void) | undefined;
  stream.addEventListener("message", () => echoed?.());
  const ping = new Uint8Array(32);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      echoed = resolve;
      stream.send(ping);
    });
    out.push(performance.now() - t0);
  }
  return out;
}

/** Bare sink protocol: takes bytes, and answers one byte once it holds as many as it was told to expect. */
export const RAW_SINK_PROTOCOL = "/bench/raw-sink/1.0.0";

/** Serve the sink; `expect(n)` arms it for the next `n` bytes on a stream. */
export async function serveRawSink(libp2p: Libp2p): Promise<{ expect(bytes: number): void }> {
  let expected = Infinity;
  await libp2p.handle(RAW_SINK_PROTOCOL, (stream) => {
    let got = 0;
    stream.addEventListener("message", (e) => {
      got += e.data.byteLength;
      if (got >= expected) {
        expected = Infinity;
        stream.send(new Uint8Array([1]));
      }
    });
  });
  return { expect: (bytes) => void (expected = bytes) };
}

/** `bytes` on an open sink stream in writes of `chunk`, waiting whenever the stream asks to drain; ms until the sink has them all. */
export async function rawSend(stream: Stream, bytes: number, chunk: Uint8Array): Promise<number> {
  const acked = new Promise<void>((resolve) => stream.addEventListener("message", () => resolve(), { once: true }));
  const t0 = performance.now();
  for (let sent = 0; sent < bytes; ) {
    const n = Math.min(chunk.byteLength, bytes - sent);
    if (stream.writableNeedsDrain) await stream.onDrain();
    stream.send(n === chunk.byteLength ? chunk : chunk.subarray(0, n));
    sent += n;
  }
  await acked;
  return performance.now() - t0;
}
