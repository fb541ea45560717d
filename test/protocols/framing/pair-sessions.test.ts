import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { Libp2p, PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { tcp } from "@libp2p/tcp";
import { createLibp2p } from "libp2p";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createMeshLibp2p } from "../../../node/libp2p/create-libp2p.js";
import { createMessageCodec, startPairSessions, type FramedChannel, type PairSession, type PairSessions } from "../../../protocols/framing/index.js";
import { eventually } from "../../node/helpers.js";

const codec = createMessageCodec({ version: 1, schema: z.object({ v: z.literal(1), n: z.number() }) });
type Message = { v: 1; n: number };

/** A session that only waits for its channel to end. */
function idle(channel: FramedChannel<Message>): PairSession<Message> {
  return {
    channel,
    run: async () => {
      for await (const message of channel) void message;
    },
  };
}

let nodes: Libp2p[] = [];
let pairs: Array<PairSessions<PairSession<Message>>> = [];
afterEach(async () => {
  await Promise.allSettled(pairs.map((p) => p.stop()));
  await Promise.allSettled(nodes.map((n) => n.stop()));
  nodes = [];
  pairs = [];
});

/** Two keys, the first with the peer id that sorts first (the side that opens sessions). */
async function orderedKeys(): Promise<[PrivateKey, PrivateKey]> {
  const [a, b] = [await generateKeyPair("Ed25519"), await generateKeyPair("Ed25519")];
  return peerIdFromPrivateKey(a).toString() < peerIdFromPrivateKey(b).toString() ? [a, b] : [b, a];
}

describe("pair sessions", () => {
  it("open on a connection whose identify never completes (the topology never hears of the peer)", async () => {
    const [lowerKey, higherKey] = await orderedKeys();
    const lower = await createMeshLibp2p({ privateKey: lowerKey, mdns: false, admit: () => true, holePunch: false });
    // No identify service: the lower side never learns this peer's protocols, as when identify times out on a loaded machine.
    const higher = await createLibp2p({
      privateKey: higherKey,
      addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    });
    nodes = [lower, higher];
    for (const libp2p of nodes) {
      pairs.push(await startPairSessions<Message, PairSession<Message>>({ libp2p, protocol: "/test/pair/1.0.0", codec, settings: {}, isMember: () => true, open: idle }));
    }
    await lower.dial(higher.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(5_000) });
    await eventually(() => pairs.every((p) => p.sessions.size === 1), 10_000, "a session on each side");
    expect([...pairs[0]!.sessions.keys()]).toEqual([higher.peerId.toString()]);
  });
});
