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
