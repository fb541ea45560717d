import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe("a member blocked here for a while", () => {
  it("is still the writer of its documents: what a third member relays from it is taken, not refused as a non-member's", async () => {
    const mesh = await startNodes(3);
    stop = mesh.stop;
    const [a, b, d] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    // B cuts A off (a link down, or a member misbehaving for a while); D still talks to both.
    a.block(b.peerId);
    b.block(a.peerId);
    const task = await a.adapter.submitTask({ description: "written while B is cut off", input: "hi", agentId: "echo" }, { route: "local" });
    await eventually(async () => (await a.adapter.getTaskState(task.id))?.status === "completed", 10_000, "A ran it");
    await eventually(async () => (await b.core.store.get<{ status?: string }>(`task/${task.id}`)) !== undefined, 15_000, "B holds A's task, relayed by D");
    expect((await b.quarantine.list()).map((q) => q.reason)).toEqual([]);
    expect(b.sync.peers()).toContain(d.peerId);
  }, 60_000);
});
