import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

const onlyHere: AgentExecutor = {
  info: { id: "only-c", name: "only on node C", description: "reports progress then answers", capabilities: ["special"] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    for (let i = 1; i <= 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
      ctx.progress(i * 33, `step ${i}`);
    }
    return { output: `done on C: ${ctx.request.input}` };
  },
};

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe("mesh routing", () => {
  it("pairs three nodes, routes a task to the only node with its agent, streams its progress back and replicates its document", async () => {
    const mesh = await startNodes(3, (i) => (i === 2 ? { agents: [onlyHere] } : {}));
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);
    expect(a.membership.isMember(c.peerId)).toBe(true);
    await eventually(() => b.membership.isMember(c.peerId), 10_000, "B learns C is a member");

    const task = await a.adapter.submitTask({ description: "special", input: "hello", agentId: "only-c" });
    expect(task.executorId).toBe(a.peerId);
    expect(task.placement?.runsOn).toBe(c.peerId);
    const updates: TaskUpdateEvent[] = [];
    for await (const u of a.adapter.streamTaskUpdates(task.id)) updates.push(u);
    expect(updates.at(-1)?.status).toBe("completed");
    expect(updates.filter((u) => u.message?.startsWith("step")).map((u) => u.progress)).toEqual([33, 66, 99]);
    expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => i + 1));
    expect((await a.adapter.getTaskState(task.id))?.output).toBe("done on C: hello");

    // The submitter keeps the task and C runs it as an attempt; every member ends up with the same documents.
    await eventually(async () => (await b.core.engine.getTask(task.id))?.status === "completed", 10_000, "B replicates the task");
    await eventually(async () => (await a.core.engine.getTask(task.id))?.status === "completed", 10_000, "A replicates the task");

    // A task A can run itself stays local.
    const local = await a.adapter.submitTask({ description: "echo", input: "x", agentId: "echo" });
    expect(local.executorId).toBe(a.peerId);
  }, 60_000);
});

describe("mesh task lists", () => {
  it("lists tasks executed by other members once their documents replicate, without ever recovering them locally", async () => {
    const mesh = await startNodes(2, (i) => (i === 1 ? { agents: [onlyHere] } : {}));
    stop = mesh.stop;
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);
    const task = await a.adapter.submitTask({ description: "special", input: "listed", agentId: "only-c", sessionId: "s1" });
    for await (const _ of a.adapter.streamTaskUpdates(task.id));
    await eventually(async () => (await a.adapter.listTasks({ sessionId: "s1" })).some((t) => t.id === task.id && t.status === "completed"), 10_000, "A lists B's task");
    expect((await a.adapter.listTasks({ status: "completed" })).map((t) => t.id)).toContain(task.id);
    await eventually(async () => (await b.adapter.listTasks({ status: "completed" })).some((t) => t.id === task.id), 10_000, "B lists A's task once it replicates");
    // The attempt B ran for it is not listed as a task of its own.
    expect((await b.adapter.listTasks()).filter((t) => t.description === "special")).toHaveLength(1);
  }, 60_000);
});

describe("revocation", () => {
  it("a revoked device is disconnected and refused by every member the revocation reaches", async () => {
    const mesh = await startNodes(3);
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);
    await eventually(() => b.libp2p.getConnections(c.libp2p.peerId).length > 0, 5000, "B connected to C");

    await a.membership.revoke(c.peerId, "laptop stolen");
    expect(a.membership.isMember(c.peerId)).toBe(false);
    // B learns it by sync from A, not from C, and cuts C off.
    await eventually(() => b.membership.isRevoked(c.peerId), 10_000, "B holds the revocation");
    await eventually(() => b.libp2p.getConnections(c.libp2p.peerId).length === 0 && a.libp2p.getConnections(c.libp2p.peerId).length === 0, 10_000, "C disconnected everywhere");
    // C may still open a transport connection, but B's gater drops it once C's key is known.
    await c.dial(b.multiaddrs()[0]!).catch(() => undefined);
    await expect(c.client.submit(b.peerId, { description: "sneaky", input: "x", agentId: "echo" })).rejects.toThrow();
    await eventually(() => b.libp2p.getConnections(c.libp2p.peerId).length === 0, 5000, "C refused by B");
    expect((await b.core.engine.listTasks()).some((t) => t.description === "sneaky")).toBe(false);
  }, 60_000);
});

describe("peers and agents across the mesh", () => {
  it("lists connected peers with level, latency and capabilities, and agents only a member offers", async () => {
    const mesh = await startNodes(2, (i) => (i === 1 ? { agents: [onlyHere] } : {}));
    stop = mesh.stop;
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);
    const peers = await a.peers();
    expect(peers).toHaveLength(1);
    expect(peers[0]).toMatchObject({ peerId: b.peerId, level: "trusted", agents: expect.arrayContaining(["echo", "sleep", "only-c"]) });
    expect(peers[0]!.latencyMs).toBeGreaterThanOrEqual(0);
    const agents = await a.adapter.listAgents();
    expect(agents.find((x) => x.id === "only-c")?.description).toBe(`offered by ${b.peerId}`);
  }, 60_000);
});
