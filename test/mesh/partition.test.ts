import { afterEach, describe, expect, it } from "vitest";
import type { TaskState, TaskStatus } from "../../src/contract/types.js";
import { canTransition, isTerminal } from "../../src/engine/state-machine.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

async function snapshot(node: CoderClawNode): Promise<string> {
  const tasks = await node.core.engine.listTasks({ limit: 10_000 });
  const rows = await Promise.all(
    tasks.map(async (t: TaskState) => `${t.id} ${t.status} ${t.executorId} ${t.output ?? ""} ${(await node.core.engine.getTaskEvents(t.id)).length}`),
  );
  return rows.sort().join("\n");
}

async function drive(side: CoderClawNode[], tag: string): Promise<string[]> {
  const ids: string[] = [];
  const work: Array<Promise<unknown>> = [];
  for (const [i, node] of side.entries()) {
    for (let k = 0; k < 3; k++) {
      const echo = await node.adapter.submitTask({ description: `${tag} echo ${i}.${k}`, input: `${tag}-${i}-${k}`, agentId: "echo" });
      // Every other slow task could never finish on its own: it ends only by a cancel, sent from the other node of the same side.
      const doomed = k % 2 === 0;
      const slow = await node.adapter.submitTask({ description: `${tag} sleep ${i}.${k}`, input: doomed ? "600000 600" : "400 4", agentId: "sleep" });
      ids.push(echo.id, slow.id);
      if (doomed) work.push(new Promise((r) => setTimeout(r, 120)).then(() => side[(i + 1) % side.length]!.adapter.cancelTask(slow.id)));
    }
  }
  await Promise.all(work);
  for (const node of side) await node.core.engine.idle();
  return ids;
}

describe("partitions", () => {
  it("both sides keep working while cut apart, and after healing every node holds identical task states reached by legal transitions", async () => {
    const mesh = await startNodes(4);
    stop = mesh.stop;
    const nodes = mesh.nodes;
    await formMesh(nodes);
    const left = nodes.slice(0, 2);
    const right = nodes.slice(2);
    const cut = (on: boolean): void => {
      for (const a of left) for (const b of right) {
        if (on) {
          a.block(b.peerId);
          b.block(a.peerId);
        } else {
          a.unblock(b.peerId);
          b.unblock(a.peerId);
        }
      }
    };

    cut(true);
    await eventually(() => left.every((a) => right.every((b) => a.libp2p.getConnections(b.libp2p.peerId).length === 0)), 5000, "partition");
    const [leftIds, rightIds] = await Promise.all([drive(left, "L"), drive(right, "R")]);
    // While cut, a side knows nothing of the other's tasks.
    expect((await left[0]!.core.engine.listTasks({ limit: 1000 })).some((t) => rightIds.includes(t.id))).toBe(false);

    cut(false);
    for (const a of left) for (const b of right) await a.dial(b.multiaddrs()[0]!);
    const all = [...leftIds, ...rightIds];
    await eventually(
      async () => {
        const snaps = await Promise.all(nodes.map(snapshot));
        return snaps.every((s) => s === snaps[0]) && snaps[0]!.split("\n").length === all.length;
      },
      30_000,
      "convergence",
    );

    for (const node of nodes) {
      for (const id of all) {
        const state = await node.core.engine.getTask(id);
        expect(state && isTerminal(state.status)).toBe(true);
        let at: TaskStatus = "pending";
        for (const e of (await node.core.engine.getTaskEvents(id)).filter((e) => e.type === "status_changed")) {
          expect(canTransition(at, e.status), `${id}: ${at} -> ${e.status}`).toBe(true);
          at = e.status;
        }
      }
    }
    const statuses = await Promise.all(all.map(async (id) => (await nodes[0]!.core.engine.getTask(id))?.status));
    expect(statuses.filter((s) => s === "cancelled").length).toBe(8);
  }, 90_000);
});
