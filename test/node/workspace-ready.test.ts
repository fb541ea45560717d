import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createShellAgent } from "../../src/agents/shell.js";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("a task that carries code", () => {
  it("is planning while its tree is put in place, and running only once the tree is there", async () => {
    const mesh = await startNodes(1, () => ({ agents: [createShellAgent()], options: { sandbox: "off" } }));
    cleanups.push(mesh.stop);
    const [node] = mesh.nodes as [CoderClawNode];
    const repo = tempDir("cc-ready-repo-");
    cleanups.push(() => repo.remove());
    mkdirSync(join(repo.path, "src"));
    for (let i = 0; i < 200; i++) writeFileSync(join(repo.path, "src", `file-${i}.txt`), `file ${i}\n`.repeat(100));
    // What the workspace holds when the task is said to run, seen as that event is recorded.
    const seen: Array<{ status: string; treeThere: boolean }> = [];
    const stop = node.core.engine.onEvent((taskId, e) => {
      if (e.type === "status_changed") seen.push({ status: e.status, treeThere: existsSync(join(mesh.homes[0]!, "workspaces", "tasks", taskId, "src", "file-199.txt")) });
    });
    cleanups.push(stop);
    const task = await node.adapter.submitTask({ description: "reads its tree", input: "cat src/file-7.txt | head -1", agentId: "shell" }, { repo: repo.path });
    await eventually(async () => (await node.adapter.getTaskState(task.id))?.status === "completed", 20_000, "the task completed");
    expect((await node.adapter.getTaskState(task.id))?.output).toBe("file 7\n");
    expect(seen.map((s) => s.status).slice(0, 2)).toEqual(["planning", "running"]);
    expect(seen.find((s) => s.status === "running")?.treeThere).toBe(true);
  }, 60_000);
});
