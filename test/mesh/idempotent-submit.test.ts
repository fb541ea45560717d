import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

let runs = 0;
const counted: AgentExecutor = {
  info: { id: "counted", name: "counted", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    runs++;
    await new Promise((r) => setTimeout(r, 300));
    return { output: `ran ${ctx.request.input}` };
  },
};

/**
 * A node sends a task's first attempt before it stores the task, so a crash in
 * between leaves the member running work its submitter forgot; a caller that
 * submits again under its idempotency key (as a workflow coordinator does after
 * a restart) must reach that attempt, not start the work a second time.
 */
describe("a submission sent again under its idempotency key", () => {
  it("reaches the attempt its member already runs: the work runs once; without a key it runs again", async () => {
    runs = 0;
    const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [counted] : [] }));
    stop = mesh.stop;
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    const request = { description: "once", input: "x", agentId: "counted", metadata: { idempotencyKey: "wf-1/step/1" } };
    const first = await a.adapter.submitTask(request, { route: b.peerId });
    const again = await a.adapter.submitTask(request, { route: b.peerId });
    for (const t of [first, again]) await eventually(async () => (await a.adapter.getTaskState(t.id))?.status === "completed", 10_000, `${t.id} completed`);
    expect((await a.adapter.getTaskState(again.id))!.output).toBe("ran x");
    expect((await a.adapter.getTaskState(again.id))!.placement!.attemptId).toBe((await a.adapter.getTaskState(first.id))!.placement!.attemptId);
    expect(runs).toBe(1);

    const plain = { description: "twice", input: "y", agentId: "counted" };
    for (const t of [await a.adapter.submitTask(plain, { route: b.peerId }), await a.adapter.submitTask(plain, { route: b.peerId })]) {
      await eventually(async () => (await a.adapter.getTaskState(t.id))?.status === "completed", 10_000, `${t.id} completed`);
    }
    expect(runs).toBe(3);
  });
});
