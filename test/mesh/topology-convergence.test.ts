import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

/** Every task a node holds, with its status, executor and output. */
async function tasks(node: CoderClawNode): Promise<string> {
  const all = await node.core.engine.listTasks({ limit: 10_000 });
  return all
    .map((t) => `${t.id} ${t.status} ${t.executorId} ${t.output ?? ""}`)
    .sort()
    .join("\n");
}

/** The length and newest hash of every audit chain a node holds. */
async function chains(node: CoderClawNode): Promise<string> {
  const heads = new Map<string, { seq: number; hash: string }>();
  for (const e of await node.security.current.getAuditLog({})) if (e.seq > (heads.get(e.author)?.seq ?? 0)) heads.set(e.author, { seq: e.seq, hash: e.hash });
  return [...heads]
    .map(([author, h]) => `${author} ${h.seq} ${h.hash}`)
    .sort()
    .join("\n");
}

/**
 * Ten nodes whose links are only those `linked` allows (the others blocked on
 * both sides), each running tasks of its own: every node must end with every
 * task in its final state, and every node's audit chain, though most pairs
 * never speak to each other.
 */
async function converges(linked: (i: number, j: number) => boolean): Promise<void> {
  const mesh = await startNodes(10);
  stop = mesh.stop;
  const nodes = mesh.nodes;
  await formMesh(nodes);
  for (const [i, a] of nodes.entries()) for (const [j, b] of nodes.entries()) if (i !== j && !linked(i, j)) a.block(b.peerId);
  await eventually(() => nodes.every((a, i) => nodes.every((b, j) => i === j || linked(i, j) || a.libp2p.getConnections(b.libp2p.peerId).length === 0)), 10_000, "the cut links");

  const ids: string[] = [];
  for (const [i, node] of nodes.entries()) {
    for (let k = 0; k < 2; k++) ids.push((await node.adapter.submitTask({ description: `topology ${i}.${k}`, input: `n${i}-${k}`, agentId: "echo" }, { route: node.peerId })).id);
  }
  for (const node of nodes) await node.core.engine.idle();

  await eventually(
    async () => {
      const held = await Promise.all(nodes.map(tasks));
      return held.every((h) => h === held[0]) && ids.every((id) => held[0]!.includes(`${id} completed`));
    },
    60_000,
    async () => `every task on every node (held: ${(await Promise.all(nodes.map(async (n) => (await n.core.engine.listTasks({ limit: 1000 })).length))).join(", ")})`,
  );
  await eventually(
    async () => {
      const held = await Promise.all(nodes.map(chains));
      return held.every((h) => h === held[0]) && held[0]!.split("\n").length === nodes.length;
    },
    60_000,
    async () => `every audit chain on every node (authors held: ${(await Promise.all(nodes.map(async (n) => (await chains(n)).split("\n").length))).join(", ")})`,
  );
  for (const node of nodes) expect((await node.security.current.verifyAudit()).ok).toBe(true);
}

describe("convergence where not every pair is connected", () => {
  it("ten nodes in a line: tasks and audit chains made on every node reach every node", { timeout: 180_000 }, async () => {
    await converges((i, j) => Math.abs(i - j) === 1);
  });

  it("ten nodes in a star: tasks and audit chains made on every leaf reach every other leaf through the hub", { timeout: 180_000 }, async () => {
    await converges((i, j) => i === 0 || j === 0);
  });
});
