import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { jsonLineChannel } from "../../node/control/line-channel.js";
import { requestChannelSuite, toySchema, type ToyMessage } from "../compliance/request-channel.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Two connected ends of a Unix socket in a temp directory. */
async function socketPair(): Promise<{ client: Socket; server: Socket; release: () => Promise<void> }> {
  const dir = tempDir("cc-lines-");
  const path = join(dir.path, "s.sock");
  let server!: Server;
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer(resolve);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const client = connect(path);
  const serverEnd = await accepted;
  return {
    client,
    server: serverEnd,
    release: async () => {
      client.destroy();
      serverEnd.destroy();
      await new Promise((resolve) => server.close(resolve));
      dir.remove();
    },
  };
}

requestChannelSuite("JSON lines over a Unix socket", () => {
  let release: (() => Promise<void>) | undefined;
  return {
    async open() {
      const pair = await socketPair();
      release = pair.release;
      const channel = (socket: Socket, peer: string) => jsonLineChannel<ToyMessage>({ socket, peer, parse: (json) => toySchema.parse(json), maxLineBytes: 64 * 1024 });
      return { client: channel(pair.client, "server"), server: channel(pair.server, "client") };
    },
    release: async () => release?.(),
  };
});

describe("JSON-line channel at its edge", () => {
  const refusal = async (bytes: string | Buffer, maxLineBytes = 1024): Promise<unknown> => {
    const pair = await socketPair();
    try {
      const channel = jsonLineChannel<ToyMessage>({ socket: pair.server, peer: "client", parse: (json) => toySchema.parse(json), maxLineBytes });
      pair.client.write(bytes);
      const read = (async () => {
        for await (const _ of channel);
      })();
      return await read.then(() => "ended cleanly", (error: unknown) => error);
    } finally {
      await pair.release();
    }
  };

  it("ends the channel on a line that is not JSON, naming it", async () => {
    expect(await refusal("{not json\n")).toMatchObject({ code: "PROTOCOL", message: "a line from client is not valid JSON" });
  });

  it("ends the channel on valid JSON the schema refuses", async () => {
    expect(await refusal(JSON.stringify({ t: "ask", rid: 0, n: 1, delayMs: 0 }) + "\n")).toMatchObject({ code: "PROTOCOL", message: expect.stringMatching(/^a line from client was refused/) });
  });

  it("ends the channel on a line over the limit before it is buffered whole", async () => {
    expect(await refusal(Buffer.alloc(5000, 0x61))).toMatchObject({ reason: "oversize" });
  });
});
