import { afterEach, describe, expect, it } from "vitest";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
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
    expect(pairs()).toEqual([1, 1, 1, 1, 1, 1]);
  }, 60_000);
});
