import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/** The real shell agent, declared safe to run again elsewhere, so its submitter may re-place it and it may be fenced. */
const retryableShell: AgentExecutor = { ...createShellAgent(), info: { ...createShellAgent().info, id: "retry-shell" }, retryable: true };

/** Whether a file named `name` exists anywhere under `home` (the shell runs in a task workspace there, sandboxed from the rest of /tmp). */
function foundUnder(home: string, name: string): boolean {
  return readdirSync(home, { recursive: true, encoding: "utf8" }).some((p) => p === name || p.endsWith(`/${name}`));
}

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const options = (dataDir: string, agents: AgentExecutor[], extra: Partial<NodeOptions> = {}): NodeOptions => ({
  dataDir,
  mdns: false,
  agents: createBuiltinRegistry(agents),
  leaseIntervalMs: 200,
  leaseTimeoutMs: 1500,
  inboundConnectionThreshold: 100,
  ...extra,
});

describe("fencing between real nodes", () => {
  it("a shell task fenced at 1 s whose submitter is cut off is stopped within 1 s, its process killed before it appends to its file", async () => {
    const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [retryableShell] : [] }));
    cleanups.push(mesh.stop);
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    const task = await a.client.submit(b.peerId, { description: "fenced shell", input: `sleep 2; echo done >> appended`, agentId: "retry-shell" }, undefined, { fenceAfterMs: 1000 });
    a.block(b.peerId);
    b.block(a.peerId);
    await eventually(async () => (await b.core.engine.getTask(task.id))?.status === "failed", 5000, "the fenced task failed");
    const ended = (await b.core.engine.getTask(task.id))!;
    expect(ended.error).toMatch(new RegExp(`^superseded: lease lost \\(${a.peerId} acknowledged nothing for \\d+ ms`));
    expect(ended.completedAt!.getTime() - ended.createdAt.getTime()).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 2500));
    expect(foundUnder(mesh.homes[1]!, "appended")).toBe(false);
  }, 60_000);

  it("a shell task whose submitter keeps acknowledging runs to completion past several fence periods", async () => {
    const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [retryableShell] : [] }));
    cleanups.push(mesh.stop);
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    // Three fence periods. At 600 ms a period (four of them), a loaded CI machine once held an acknowledgement past
    // one, and the task was fenced: the right outcome for a submitter that late, not the one this test is about.
    const task = await a.client.submit(b.peerId, { description: "kept shell", input: `sleep 4.5; echo done >> appended`, agentId: "retry-shell" }, undefined, { fenceAfterMs: 1500 });
    await eventually(async () => (await b.core.engine.getTask(task.id))?.status === "completed", 20_000, "the task completed");
    expect(foundUnder(mesh.homes[1]!, "appended")).toBe(true);
  }, 60_000);

  it("a fenced task is not started again by its executor's recovery, whose fence and submitter's acknowledgements died with it: it ends superseded and its work never runs there", async () => {
    const dirs = [tempDir("cc-fence-a-"), tempDir("cc-fence-b-")];
    cleanups.push(() => dirs.forEach((d) => d.remove()));
    const [ha, hb] = dirs.map((d) => d.path) as [string, string];
    const a = await createNode(options(ha, []));
    cleanups.push(() => a.stop());
    let b: CoderClawNode = await createNode(options(hb, [retryableShell], { maxConcurrentTasks: 1 }));
    cleanups.push(() => b.stop());
    await formMesh([a, b]);
    // B's one slot is taken, so the fenced task waits in B's queue, admitted and durable, while A acknowledges its leases.
    const busy = await a.client.submit(b.peerId, { description: "slot", input: "sleep 30", agentId: "retry-shell" });
    await eventually(async () => (await b.core.engine.getTask(busy.id))?.status === "running", 10_000, "the slot taken");
    const fenced = await a.client.submit(b.peerId, { description: "fenced", input: "echo done >> appended", agentId: "retry-shell" }, undefined, { fenceAfterMs: 1000 });
    expect((await b.core.engine.getTask(fenced.id))?.status).toBe("pending");
    await new Promise((r) => setTimeout(r, 1500));
    expect((await b.core.engine.getTask(fenced.id))?.status).toBe("pending");

    // B goes down, and its submitter with it: nobody acknowledges anything for this task from now on, and A (or its
    // dispatcher) may place it elsewhere once its fence of 1 s has passed.
    await b.stop();
    await a.stop();
    await new Promise((r) => setTimeout(r, 1200));
    b = await createNode(options(hb, [retryableShell], { maxConcurrentTasks: 1 }));
    cleanups.push(() => b.stop());

    await eventually(async () => (await b.core.engine.getTask(fenced.id))?.status === "failed", 10_000, async () => `the fenced task ended (${JSON.stringify(await b.core.engine.getTask(fenced.id))}, appended: ${foundUnder(hb, "appended")})`);
    expect((await b.core.engine.getTask(fenced.id))!.error).toMatch(/^superseded: /);
    await new Promise((r) => setTimeout(r, 1500));
    expect(foundUnder(hb, "appended")).toBe(false);
  }, 60_000);
});
