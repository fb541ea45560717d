import { afterEach, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskState } from "../../src/contract/types.js";
import { createNode, type CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

/** An agent only one node has. */
const onlyB: AgentExecutor = {
  info: { id: "only-b", name: "only on B", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => ({ output: `B did ${ctx.request.input}` }),
};

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function finalState(node: CoderClawNode, id: string): Promise<TaskState> {
  for await (const _ of node.adapter.streamTaskUpdates(id));
  return (await node.adapter.getTaskState(id))!;
}

describe("store and forward", () => {
  it("a task for an agent only B has waits, visible to every member with its reason, while B is down, and starts on B within 5 s of its return", async () => {
    const mesh = await startNodes(3, (i) => ({ agents: i === 1 ? [onlyB] : [] }));
    cleanups.push(mesh.stop);
    const [a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    await b.stop();

    const task = await a.adapter.submitTask({ description: "for B", input: "x", agentId: "only-b" });
    expect(task.status).toBe("pending");
    expect(task.placement?.reason).toBe("waiting for a member with agent only-b");
    // Replicated: C sees what waits on A, and why.
    await eventually(async () => (await c.adapter.listTasks({ status: "pending" })).some((t) => t.id === task.id && t.placement?.reason === task.placement?.reason), 10_000, "C sees the waiting task");

    const back = await createNode({ dataDir: mesh.homes[1]!, mdns: false, agents: createBuiltinRegistry([onlyB]), leaseIntervalMs: 200, leaseTimeoutMs: 1500 });
    cleanups.push(() => back.stop());
    await back.dial(a.multiaddrs()[0]!);
    await eventually(async () => (await a.adapter.getTaskState(task.id))?.placement?.runsOn === back.peerId, 5000, "placed on B within 5 s");
    const done = await finalState(a, task.id);
    expect(done.status).toBe("completed");
    expect(done.output).toBe("B did x");
    expect(done.placement?.runsOn).toBe(b.peerId);
  }, 60_000);

  it("a waiting task whose deadline passes fails with a clear error; one that may not wait is refused at once and stored nowhere", async () => {
    const mesh = await startNodes(2);
    cleanups.push(mesh.stop);
    const [a] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);

    const deadline = new Date(Date.now() + 1500);
    const task = await a.adapter.submitTask({ description: "too late", input: "x", agentId: "only-b" }, { deadline });
    expect(task.status).toBe("pending");
    const ended = await finalState(a, task.id);
    expect(ended.status).toBe("failed");
    expect(ended.error).toBe(`deadline ${deadline.toISOString()} passed before a member could run it (waiting for a member with agent only-b)`);
    expect(ended.placement?.deadline?.getTime()).toBe(deadline.getTime());

    const before = (await a.adapter.listTasks()).length;
    const refused = await a.adapter.submitTask({ description: "now or never", input: "x", agentId: "only-b" }, { waitForPeer: false }).catch((e: unknown) => e);
    expect((refused as { code?: string }).code).toBe("UNKNOWN_AGENT");
    expect((refused as Error).message).toMatch(/waiting for a member with agent only-b/);
    expect((await a.adapter.listTasks()).length).toBe(before);
  }, 60_000);

  it("refuses malformed scheduling options at the edge, naming the field", async () => {
    const mesh = await startNodes(1);
    cleanups.push(mesh.stop);
    const [a] = mesh.nodes as [CoderClawNode];
    await formMesh(mesh.nodes);
    for (const [options, field] of [
      [{ priority: 1.5 }, "priority"],
      [{ priority: 1000 }, "priority"],
      [{ requires: { labels: ["has space"] } }, "requires.labels.0"],
      [{ requires: { resources: { cpu: -1 } } }, "requires.resources.cpu"],
      [{ deadline: "tomorrow" }, "deadline"],
      [{ nonsense: true }, "nonsense"],
    ] as const) {
      const err = (await a.adapter.submitTask({ description: "d", input: "x", agentId: "echo" }, options as never).catch((e: unknown) => e)) as { code?: string; field?: string };
      expect([err.code, err.field], JSON.stringify(options)).toEqual(["INVALID_INPUT", field]);
    }
    expect(await a.adapter.listTasks()).toEqual([]);
  }, 30_000);
});

describe("placement", () => {
  it("nodes with 1, 2 and 4 slots take 14 one-second tasks: none is ever over its slots, and the first wave fills every slot", async () => {
    const slots = [1, 2, 4];
    const mesh = await startNodes(3, (i) => ({ options: { maxConcurrentTasks: slots[i]! } }));
    cleanups.push(mesh.stop);
    const [a] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    // Every node has seen every other's record before the burst.
    await eventually(async () => (await a.directory.members()).length === 2, 10_000, "A sees both members");

    const tasks = await Promise.all(Array.from({ length: 14 }, (_, i) => a.adapter.submitTask({ description: `t${i}`, input: "1000 2", agentId: "sleep" })));
    const ended = await Promise.all(tasks.map((t) => finalState(a, t.id)));
    expect(ended.map((t) => t.status)).toEqual(ended.map(() => "completed"));

    // Where each ran, and when: no node ever ran more at once than its slots.
    const runs = new Map<string, Array<[number, number]>>();
    for (const t of ended) {
      const node = t.placement?.runsOn ?? a.peerId;
      const owner = mesh.nodes.find((n) => n.peerId === node)!;
      const attempt = t.placement?.attemptId === undefined ? t : (await owner.core.engine.getTask(t.placement.attemptId))!;
      runs.set(node, [...(runs.get(node) ?? []), [attempt.startedAt!.getTime(), attempt.completedAt!.getTime()]]);
    }
    // The first wave, started before any task ended, fills every slot and no more; how the second wave splits
    // depends on which slot frees first, which load on the machine decides.
    const firstEnd = Math.min(...[...runs.values()].flat().map(([, e]) => e));
    for (const [i, node] of mesh.nodes.entries()) {
      const spans = runs.get(node.peerId) ?? [];
      const overlap = Math.max(0, ...spans.map(([s]) => spans.filter(([s2, e2]) => s2 <= s && e2 > s).length));
      expect(overlap, `node with ${slots[i]} slots`).toBeLessThanOrEqual(slots[i]!);
      expect(spans.filter(([s]) => s < firstEnd).length, `first wave on the node with ${slots[i]} slots`).toBe(slots[i]!);
    }
  }, 60_000);

  it("a task requiring a label waits as infeasible until a node with it joins, then runs there", async () => {
    const mesh = await startNodes(2);
    cleanups.push(mesh.stop);
    const [a] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    const task = await a.adapter.submitTask({ description: "train", input: "x", agentId: "echo" }, { requires: { labels: ["gpu"] } });
    expect(task.status).toBe("pending");
    expect(task.placement?.reason).toBe("infeasible: no known member with agent echo has label gpu");

    const gpu = await startNodes(1, () => ({ options: { labels: ["gpu"] } }));
    cleanups.push(gpu.stop);
    const g = gpu.nodes[0]!;
    const { invite } = await a.pairing.invite("trusted", 60_000);
    await g.pairing.join(invite);
    await g.dial(a.multiaddrs()[0]!);
    const done = await finalState(a, task.id);
    expect(done.status).toBe("completed");
    expect(done.placement?.runsOn).toBe(g.peerId);
  }, 60_000);
});

describe("exactly once", () => {
  it("an executor restarted from its home answers a repeated idempotency key with the task it took before", async () => {
    const mesh = await startNodes(2);
    cleanups.push(mesh.stop);
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    const first = await a.client.submit(b.peerId, { description: "once", input: "x", agentId: "echo" }, undefined, { key: "attempt-1" });
    await b.stop();
    const back = await createNode({ dataDir: mesh.homes[1]!, mdns: false, agents: createBuiltinRegistry() });
    cleanups.push(() => back.stop());
    await back.dial(a.multiaddrs()[0]!);
    const again = await a.client.submit(b.peerId, { description: "once", input: "x", agentId: "echo" }, undefined, { key: "attempt-1" });
    expect(again.id).toBe(first.id);
    expect((await back.core.engine.listTasks()).filter((t) => t.description === "once")).toHaveLength(1);
  }, 60_000);
});

describe("cancel", () => {
  it("a member's cancel of a task placed elsewhere reaches its attempt: one outcome, cancelled, on both", async () => {
    const mesh = await startNodes(3, (i) => ({ agents: i === 1 ? [onlyB] : [] }));
    cleanups.push(mesh.stop);
    const [a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    // Pinned to B, a long sleep.
    const task = await a.adapter.submitTask({ description: "long", input: "60000", agentId: "sleep" }, { route: b.peerId });
    await eventually(async () => (await a.adapter.getTaskState(task.id))?.status === "running", 10_000, "running on B");
    expect(await c.client.cancel(a.peerId, task.id)).toBe(true);
    await eventually(async () => (await a.adapter.getTaskState(task.id))?.status === "cancelled", 10_000, "cancelled on A");
    await eventually(async () => (await b.core.engine.getTask(task.placement!.attemptId!))?.status === "cancelled", 10_000, "its attempt cancelled on B");
  }, 60_000);
});
