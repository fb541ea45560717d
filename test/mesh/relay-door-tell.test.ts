import type { Stream } from "@libp2p/interface";
import { afterEach, describe, expect, it } from "vitest";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { doorCodec as codec, RELAY_DOOR_PROTOCOL, tellRelay } from "../../node/mesh/relay-doors.js";
import { FramedChannel } from "../../protocols/framing/index.js";
import { connectAll, startNodes, stopAll } from "../node/helpers.js";

let nodes: MeshLibp2p[] = [];
afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

/** A relay's door handler written by hand: `answer(n)` says what the n-th stream (from 0) gets. */
async function relay(answer: (n: number) => "reset" | "reply" | "silent close" | "hold"): Promise<{ relay: MeshLibp2p; member: MeshLibp2p; seen: number[] }> {
  nodes = await startNodes(2);
  await connectAll(nodes);
  const [r, member] = nodes as [MeshLibp2p, MeshLibp2p];
  // Dialled both ways, the pair keeps one connection: each try below should find it open (the retirement itself is what tellRelay survives).
  const open = (): number => member.getConnections(r.peerId).filter((c) => c.status === "open").length;
  for (let waited = 0; open() !== 1 && waited < 5000; waited += 25) await new Promise((resolve) => setTimeout(resolve, 25));
  const seen: number[] = [];
  let n = 0;
  await r.handle(RELAY_DOOR_PROTOCOL, (stream: Stream, connection) => {
    const how = answer(n++);
    if (how === "reset") return stream.abort(new Error("taken by the pair's other connection"));
    const channel = new FramedChannel({ stream, codec, peer: connection.remotePeer.toString() });
    void (async () => {
      const { untilMs } = await channel.receive({ timeoutMs: 5000 });
      seen.push(untilMs);
      if (how === "hold") return;
      if (how === "reply") await channel.send({ untilMs });
      await channel.close();
    })().catch(() => undefined);
  });
  return { relay: r, member, seen };
}

describe("telling a relay of an invite's door", () => {
  it("sends again when the stream is reset before the relay answers, and stops at its answer", async () => {
    const { relay: r, member, seen } = await relay((n) => (n === 0 ? "reset" : "reply"));
    await tellRelay(member, r.peerId.toString(), 123_456);
    expect(seen).toEqual([123_456]);
  });

  it("takes a relay of an older version, which answers nothing and ends the stream, as told, once", async () => {
    const { relay: r, member, seen } = await relay(() => "silent close");
    await tellRelay(member, r.peerId.toString(), 42);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen).toEqual([42]);
  });

  it("fails at once, without trying again, when a relay holds the stream open without answering", async () => {
    const { relay: r, member, seen } = await relay(() => "hold");
    const started = Date.now();
    await expect(tellRelay(member, r.peerId.toString(), 7)).rejects.toThrow(/no message .* within 2000 ms/);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(seen).toEqual([7]);
  });

  it("gives up after three tries, with the last reason", async () => {
    let streams = 0;
    const { relay: r, member } = await relay(() => {
      streams++;
      return "reset";
    });
    await expect(tellRelay(member, r.peerId.toString(), 1)).rejects.toThrow(/reset/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(streams).toBe(3);
    await expect(tellRelay(member, "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", 1)).rejects.toThrow(/no direct connection/);
  });
});
