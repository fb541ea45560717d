import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { afterEach, describe, expect, it } from "vitest";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { startNodes as startLibp2p, stopAll } from "../node/helpers.js";

let stop: (() => Promise<void>) | undefined;
let bare: MeshLibp2p[] = [];
afterEach(async () => {
  await stop?.();
  stop = undefined;
  await stopAll(bare);
  bare = [];
});

describe("connections between members", () => {
  it("a formed mesh of four holds one connection per pair, and every protocol keeps working over it", async () => {
    const mesh = await startNodes(4);
    stop = mesh.stop;
    const nodes = mesh.nodes;
    await formMesh(nodes);
    const pairs = (): number[] => nodes.flatMap((a, i) => nodes.slice(i + 1).map((b) => a.libp2p.getConnections(b.libp2p.peerId).length));
    await eventually(() => pairs().every((n) => n >= 1), 15_000, "every pair connected");
    // Members that learn of each other at once dial each other at once: the second connection must go, on both ends.
    await eventually(() => pairs().every((n) => n === 1), 10_000, () => `one connection per pair (have ${pairs().join(",")})`);
    // The sessions that were on a retired connection are opened again on the one kept: a change on each node reaches all.
    const ids = await Promise.all(nodes.map(async (n, i) => (await n.adapter.submitTask({ description: `from ${i}`, input: `x${i}`, agentId: "echo" })).id));
    await eventually(
      async () => (await Promise.all(nodes.map(async (n) => (await Promise.all(ids.map((id) => n.core.engine.getTask(id)))).every((t) => t?.status === "completed")))).every(Boolean),
      20_000,
      "every task completed and replicated to every node",
    );
    // A pair that dialled each other again meanwhile holds two until the retired one's streams end (as above).
    await eventually(() => pairs().every((n) => n === 1), 10_000, () => `one connection per pair after the tasks (have ${pairs().join(",")})`);
  }, 60_000);

  it("closes the second connection only once the streams that would not move have ended: a long exchange on it finishes", async () => {
    const keys = [await generateKeyPair("Ed25519"), await generateKeyPair("Ed25519")];
    keys.sort((a, b) => (peerIdFromPrivateKey(a).toString() < peerIdFromPrivateKey(b).toString() ? -1 : 1));
    bare = await startLibp2p(2, { keys });
    const [lower, higher] = bare as [MeshLibp2p, MeshLibp2p];
    // An exchange that takes longer than any grace period: the answer comes 4 s after the question.
    await lower.handle("/test/slow/1.0.0", async (stream) => {
      for await (const chunk of stream) {
        await new Promise((r) => setTimeout(r, 4000));
        stream.send(chunk.subarray());
        await stream.close();
        return;
      }
    });
    // The connection both ends keep is the one the lower id dialled; the higher one's, opened next, is retired.
    await lower.dial(higher.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(5000) });
    const second = await higher.dial(lower.getMultiaddrs()[0]!, { force: true, signal: AbortSignal.timeout(5000) });
    expect(higher.getConnections(lower.peerId)).toHaveLength(2);
    const slow = await second.newStream("/test/slow/1.0.0");
    const answer = (async () => {
      slow.send(new Uint8Array([7]));
      let got: number | undefined;
      for await (const chunk of slow) got ??= chunk.subarray()[0];
      await slow.close();
      return got;
    })();
    expect(await answer).toBe(7);
    await eventually(() => higher.getConnections(lower.peerId).length === 1 && lower.getConnections(higher.peerId).length === 1, 5000, "the second connection closed");
    expect(second.status).not.toBe("open");
  }, 30_000);
});
