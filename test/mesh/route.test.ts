import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClientAdapter } from "../../node/control/control-client.js";
import type { ControlServer } from "../../node/control/control-server.js";
import { startNodeControl } from "../../node/control/node-control.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, type HttpServer } from "../../node/http/index.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskUpdateEvent, TransportAdapter } from "../../src/contract/types.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { formMesh, startNodes } from "../helpers/mesh.js";

const onlyOnB: AgentExecutor = {
  info: { id: "only-b", name: "only on node B", description: "answers at once", capabilities: ["special"] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => ({ output: `done on B: ${ctx.request.input}` }),
};

async function lastStatus(adapter: TransportAdapter, taskId: string): Promise<string | undefined> {
  let last: TaskUpdateEvent | undefined;
  for await (const u of adapter.streamTaskUpdates(taskId)) last = u;
  return last?.status;
}

describe("a lone node", () => {
  it("runs an auto-routed task it can run itself without waiting out a capability lookup", async () => {
    const mesh = await startNodes(1, () => ({ agents: [onlyOnB] }));
    try {
      const node = mesh.nodes[0]!;
      // only-b is offered by no other node: a lookup for it would last its whole deadline (5 s), so none is made.
      const lookups: string[] = [];
      const findAgent = node.directory.findAgent.bind(node.directory);
      Object.assign(node.directory, { findAgent: (agentId: string, options?: Parameters<typeof findAgent>[1]) => (lookups.push(agentId), findAgent(agentId, options)) });
      const task = await node.adapter.submitTask({ description: "alone", input: "x", agentId: "only-b" }, { route: "auto" });
      expect(lookups).toEqual([]);
      expect(task.executorId).toBe(node.peerId);
      expect(await lastStatus(node.adapter, task.id)).toBe("completed");
    } finally {
      await mesh.stop();
    }
  }, 30_000);
});

describe("route, through every entry point of a mesh node", () => {
  let stop: () => Promise<void>;
  let a: CoderClawNode;
  let b: CoderClawNode;
  let http: HttpServer;
  let control: ControlServer;
  const entries: Array<[string, TransportAdapter]> = [];

  beforeAll(async () => {
    const mesh = await startNodes(2, (i) => (i === 1 ? { agents: [onlyOnB] } : {}));
    stop = mesh.stop;
    [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    http = await createHttpServer({ adapter: a.adapter, authenticate: () => ({}) });
    const socketPath = join(mesh.homes[0]!, "control.sock");
    const token = randomBytes(16).toString("hex");
    control = await startNodeControl(a, { socketPath, token });
    entries.push(["the node's adapter", a.adapter], ["its control socket", await ControlClientAdapter.connect(socketPath, token)], ["its HTTP API", new HTTPTransportAdapter({ baseUrl: http.url, token: "any" })]);
  }, 60_000);

  afterAll(async () => {
    for (const [, adapter] of entries.slice(1)) await adapter.close();
    await http?.close();
    await control?.close();
    await stop?.();
  });

  it("a peer id pins the task to that member, though the receiving node could run it", async () => {
    for (const [name, adapter] of entries) {
      const task = await adapter.submitTask({ description: "pinned", input: name, agentId: "echo" }, { route: b.peerId });
      // Kept by the receiving node, run by B as an attempt.
      expect(task.executorId, name).toBe(a.peerId);
      expect(task.placement?.runsOn, name).toBe(b.peerId);
      expect(await lastStatus(adapter, task.id), name).toBe("completed");
    }
  }, 60_000);

  it("`local` keeps the task on the receiving node: an agent only a peer offers is refused, not routed away; `auto` routes it", async () => {
    for (const [name, adapter] of entries) {
      const err = await adapter.submitTask({ description: "here", input: name, agentId: "only-b" }, { route: "local" }).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(CoderClawError);
      expect((err as CoderClawError).code, name).toBe("UNKNOWN_AGENT");
      const local = await adapter.submitTask({ description: "here", input: name, agentId: "echo" }, { route: "local" });
      expect(local.executorId, name).toBe(a.peerId);
      const routed = await adapter.submitTask({ description: "there", input: name, agentId: "only-b" }, { route: "auto" });
      expect(routed.placement?.runsOn, name).toBe(b.peerId);
      expect(await lastStatus(adapter, routed.id), name).toBe("completed");
    }
  }, 60_000);
});
