import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import { formMesh, startNodes } from "../helpers/mesh.js";

/** Slow, and not safe to run twice: a lost executor must fail the task, not retry it. */
const slowOnce: AgentExecutor = {
  info: { id: "slow-once", name: "slow once", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    for (let i = 1; i <= 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      ctx.progress(i, `step ${i}`);
    }
    return { output: "finished" };
  },
};

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe("executor leases", () => {
  it("fails a non-retryable task with a clear error when its executor vanishes, and re-routes a retryable one", async () => {
    const mesh = await startNodes(3, (i) => (i === 2 ? { agents: [slowOnce] } : {}));
    stop = mesh.stop;
    const [a, , c] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);

    const once = await a.adapter.submitTask({ description: "once", input: "x", agentId: "slow-once" });
    const retry = await a.adapter.submitTask({ description: "retry", input: "3000 30", agentId: "sleep" }, { route: c.peerId });
    expect(once.executorId).toBe(c.peerId);
    expect(retry.executorId).toBe(c.peerId);

    const follow = async (id: string): Promise<TaskUpdateEvent[]> => {
      const seen: TaskUpdateEvent[] = [];
      for await (const u of a.adapter.streamTaskUpdates(id)) {
        seen.push(u);
        // The executor drops off the network mid-task; its engine keeps running, unreachable.
        if (u.progress === 3 && c.libp2p.status === "started") await c.libp2p.stop();
      }
      return seen;
    };
    const [onceUpdates, retryUpdates] = await Promise.all([follow(once.id), follow(retry.id)]);

    expect(onceUpdates.at(-1)?.status).toBe("failed");
    expect(onceUpdates.at(-1)?.message).toMatch(/unreachable: lease expired and agent slow-once is not retryable/);
    expect((await a.adapter.getTaskState(once.id))?.status).toBe("failed");

    const rerouted = retryUpdates.find((u) => u.message?.includes("re-routed"));
    expect(rerouted, JSON.stringify(retryUpdates.map((u) => u.message))).toBeDefined();
    expect(retryUpdates.at(-1)?.status).toBe("completed");
    expect(retryUpdates.map((u) => u.seq)).toEqual(retryUpdates.map((_, i) => i + 1));
    const final = await a.adapter.getTaskState(retry.id);
    expect(final?.status).toBe("completed");
    expect(final?.executorId).not.toBe(c.peerId);
  }, 60_000);
});
