import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createMessageCodec, handleFramed, RequestPool, serveRequests, type RequestShape } from "../../protocols/framing/index.js";
import { defineService, type DefinedService } from "../../node/services/mesh-service.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

/** A toy protocol a Node app adds to its nodes: ask a member for a greeting. */
const GREET_PROTOCOL = "/example/greet/1.0.0";
const greetSchema = z.discriminatedUnion("t", [
  z.strictObject({ t: z.literal("hello"), rid: z.number().int().min(1), name: z.string().max(64) }),
  z.strictObject({ t: z.literal("greeting"), rid: z.number().int().min(1), text: z.string().max(256) }),
]);
type Greet = z.infer<typeof greetSchema>;
const greetCodec = createMessageCodec({ version: 1, schema: greetSchema, maxMessageBytes: 1024 });
const greetShape: RequestShape<Greet> = { answerTo: (m) => (m.t === "greeting" ? m.rid : undefined), failure: () => undefined };

interface Greeter {
  greet(peer: string, name: string): Promise<string>;
  /** How many times the node told this service that membership changed. */
  readonly changes: number;
  stop(): Promise<void>;
  membersChanged(): void;
}

/** The whole protocol, built on the service shape and the node's context alone. */
function greetService(): DefinedService<Greeter> {
  return defineService(GREET_PROTOCOL, async (context) => {
    await handleFramed<Greet>(context.libp2p, GREET_PROTOCOL, {
      codec: greetCodec,
      accept: context.isMember,
      onChannel: (channel) =>
        void serveRequests(channel, {
          answer: (m): Greet | undefined => (m.t === "hello" ? { t: "greeting", rid: m.rid, text: `hello ${m.name}, from ${context.identity.peerId}` } : undefined),
        }).catch((error: Error) => context.report(error, channel.peer)),
    });
    const pool = new RequestPool<Greet>({ libp2p: context.libp2p, protocol: GREET_PROTOCOL, codec: greetCodec, shape: greetShape, requests: { timeoutMs: 5000 } });
    let changes = 0;
    return {
      async greet(peer, name) {
        const answer = await (await pool.get(peer)).request((rid) => ({ t: "hello", rid, name }));
        return answer.t === "greeting" ? answer.text : "";
      },
      get changes() {
        return changes;
      },
      membersChanged: () => void changes++,
      async stop() {
        await pool.close();
        await context.libp2p.unhandle(GREET_PROTOCOL);
      },
    };
  });
}

let stopMesh: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stopMesh?.();
  stopMesh = undefined;
});

describe("a mesh protocol added through the service shape alone", () => {
  it("runs between two members, is refused to a stranger, follows membership, and stops with the node", async () => {
    const greeters = [greetService(), greetService(), greetService()];
    const { nodes, stop } = await startNodes(3, (i) => ({ options: { services: [greeters[i]!] } }));
    stopMesh = stop;
    const [a, b, stranger] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    await formMesh([a, b]);

    expect(await greeters[0]!.running.greet(b.peerId, "a")).toBe(`hello a, from ${b.peerId}`);
    expect(await greeters[1]!.running.greet(a.peerId, "b")).toBe(`hello b, from ${a.peerId}`);

    // A stranger cannot even hold a connection to a member, so it cannot speak the protocol.
    await expect(stranger.dial(a.multiaddrs()[0]!).then(() => greeters[2]!.running.greet(a.peerId, "mallory"))).rejects.toThrow();

    // Membership changes reach the service: B is revoked, A is told, and B is no longer served.
    const before = greeters[0]!.running.changes;
    await a.membership.revoke(b.peerId, "lost laptop");
    await eventually(() => greeters[0]!.running.changes > before, 5000, "the service told of the revocation");
    await expect(greeters[1]!.running.greet(a.peerId, "b")).rejects.toThrow();

    // Stopping the node stops the service: its protocol is gone from libp2p before libp2p stops.
    await a.stop();
    await expect(greeters[0]!.running.greet(b.peerId, "a")).rejects.toThrow("closed");
    expect(a.libp2p.getProtocols()).not.toContain(GREET_PROTOCOL);
  });

  it("may cut a misbehaving peer off while later services still start", async () => {
    const stranger = (await startNodes(1)).nodes[0]!;
    const blocker = defineService("/example/blocker/1.0.0", async (context) => {
      // As sync does when a member's forgeries pile up during its first reconciliation.
      context.block(stranger.peerId, 60_000);
      return { stop: async () => undefined };
    });
    const { nodes, stop } = await startNodes(1, () => ({ options: { services: [blocker, greetService()] } }));
    stopMesh = async () => {
      await stop();
      await stranger.stop();
    };
    // Starting at all is the point: the node's block was not ready while its services started.
    expect(nodes[0]!.libp2p.status).toBe("started");
  });
});
