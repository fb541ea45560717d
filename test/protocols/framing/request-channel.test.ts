import { ChannelPool, handleFramed, memoryChannelPair, type MessageChannel } from "../../../protocols/framing/index.js";
import type { MeshLibp2p } from "../../../node/libp2p/create-libp2p.js";
import { requestChannelSuite, toyCodec, type ToyMessage } from "../../compliance/request-channel.js";
import { connectAll, startNodes, stopAll } from "../../node/helpers.js";

requestChannelSuite("in-memory pair", () => {
  let ends: MessageChannel<ToyMessage>[] = [];
  return {
    async open() {
      const [client, server] = memoryChannelPair<ToyMessage>();
      ends = [client, server];
      return { client, server };
    },
    release: async () => void (await Promise.all(ends.map((e) => e.close()))),
  };
});

requestChannelSuite("in-memory pair through the codec", () => {
  let ends: MessageChannel<ToyMessage>[] = [];
  return {
    async open() {
      const [client, server] = memoryChannelPair<ToyMessage>({ codec: toyCodec });
      ends = [client, server];
      return { client, server };
    },
    release: async () => void (await Promise.all(ends.map((e) => e.close()))),
  };
});

const PROTOCOL = "/coderclaw/test-requests/1.0.0";

requestChannelSuite("libp2p stream between two nodes on 127.0.0.1", () => {
  let nodes: MeshLibp2p[] = [];
  let pool: ChannelPool<ToyMessage> | undefined;
  return {
    async open() {
      nodes = await startNodes(2);
      await connectAll(nodes);
      const [serving, asking] = nodes as [MeshLibp2p, MeshLibp2p];
      const accepted = new Promise<MessageChannel<ToyMessage>>((resolve) =>
        void handleFramed<ToyMessage>(serving, PROTOCOL, { codec: toyCodec, accept: () => true, onChannel: (channel) => resolve(channel) }),
      );
      pool = new ChannelPool<ToyMessage>({ libp2p: asking, protocol: PROTOCOL, codec: toyCodec });
      const client = await pool.get(serving.peerId);
      // The answering side sees the stream once the first frame arrives.
      await client.send({ t: "note", text: "hello" });
      const server = await accepted;
      const hello = await server[Symbol.asyncIterator]().next();
      if (hello.value?.t !== "note") throw new Error("the stream did not open with its greeting");
      return { client, server };
    },
    async release() {
      await pool?.close();
      await stopAll(nodes);
      nodes = [];
    },
  };
});
