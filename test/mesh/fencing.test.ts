import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { createShellAgent } from "../../src/agents/shell.js";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

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
});
