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

  it("a revoked device is not: its documents, relayed by a member that has not heard of the revocation, are refused", async () => {
    const mesh = await startNodes(4);
    stop = mesh.stop;
    const [a, w, r, v] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    const cut = (x: CoderClawNode, y: CoderClawNode): void => {
      x.block(y.peerId);
      y.block(x.peerId);
    };
    // W talks only to R, and R to nobody else: what W writes now reaches R alone.
    cut(w, a);
    cut(w, v);
    cut(r, a);
    cut(r, v);
    const task = await w.adapter.submitTask({ description: "written before the revocation", input: "hi", agentId: "echo" }, { route: "local" });
    await eventually(async () => (await r.core.store.get(`task/${task.id}`)) !== undefined, 15_000, "R holds W's task");
    await a.membership.revoke(w.peerId, "laptop stolen");
    await eventually(() => v.membership.isRevoked(w.peerId), 10_000, "V holds the revocation");
    // R, not told yet, relays W's document to V.
    v.unblock(r.peerId);
    r.unblock(v.peerId);
    await v.dial(r.multiaddrs()[0]!);
    await eventually(async () => (await v.quarantine.list()).length > 0 || (await v.core.store.get(`task/${task.id}`)) !== undefined, 15_000, "V judged W's document");
    expect(await v.core.store.get(`task/${task.id}`)).toBeUndefined();
    expect((await v.quarantine.list()).map((q) => q.reason)).toEqual([`writer ${w.peerId} of task/${task.id} is not a member`]);
  }, 60_000);
});
