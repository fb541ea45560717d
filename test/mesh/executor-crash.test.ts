import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import { assertBuilt } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A command agent, never retried by the mesh: it could have side effects. */
const COUNTER = `agents:
  - id: slow-lines
    name: slow lines
    description: prints a line every 200 ms
    capabilities: [demo]
    command: [sh, -c, 'for i in $(seq 1 50); do echo "line $i"; sleep 0.2; done']
    input: stdin
`;

describe("executor killed mid-task (separate processes)", () => {
  it("the submitter fails a non-retryable task and re-routes a retryable one; the restarted executor fails its own copies as interrupted", async () => {
    const homes = [tempDir("cc-crash-a-"), tempDir("cc-crash-c-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hc] = homes.map((h) => h.path) as [string, string];
    mkdirSync(join(hc, ".coderClaw"));
    writeFileSync(join(hc, ".coderClaw", "runtime.yaml"), COUNTER);
    const args = ["--lease-timeout", "1500"];
    const a: NodeProcess = await startNodeProcess(ha, args);
    let c: NodeProcess = await startNodeProcess(hc, args);
    cleanups.push(() => a.stop(), () => c.stop());
    await a.client.admin("mesh.create", { name: "crash" });
    const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
    await c.client.admin("mesh.join", { invite });

    const lines = await a.client.submitTask({ description: "lines", input: "", agentId: "slow-lines" });
    const sleepy = await a.client.submitTask({ description: "sleepy", input: "4000 40", agentId: "sleep" }, { route: c.deviceId });
    expect(lines.executorId).toBe(c.deviceId);
    expect(sleepy.executorId).toBe(c.deviceId);

    let killed: Promise<void> | undefined;
    const follow = async (id: string): Promise<TaskUpdateEvent[]> => {
      const seen: TaskUpdateEvent[] = [];
      for await (const u of a.client.streamTaskUpdates(id)) {
        seen.push(u);
        // Output coalesces under load ("line 2\nline 3\n" is one update): look for the line, not the update's start.
        if (/(^|\n)line 3(\n|$)/.test(u.message ?? "")) killed ??= c.kill();
      }
      return seen;
    };
    const [lineUpdates, sleepUpdates] = await Promise.all([follow(lines.id), follow(sleepy.id)]);
    await killed;

    expect(lineUpdates.at(-1)?.status).toBe("failed");
    expect(lineUpdates.at(-1)?.message).toMatch(/lease expired and agent slow-lines is not retryable/);
    expect(sleepUpdates.some((u) => u.message?.includes("re-routed"))).toBe(true);
    expect(sleepUpdates.at(-1)?.status).toBe("completed");
    expect((await a.client.getTaskState(sleepy.id))?.executorId).toBe(a.deviceId);

    // The executor comes back: its recovery fails what it was running, and the mesh sees it.
    c = await startNodeProcess(hc, [...args, "--bootstrap", a.addr]);
    for (const id of [lines.id, sleepy.id]) {
      const own = await c.client.getTaskState(id);
      expect(own?.status, id).toBe("failed");
      expect(own?.error).toBe("interrupted by restart");
    }
    await eventually(async () => (await a.client.listTasks({ status: "failed" })).some((t) => t.id === lines.id), 15_000, "failure replicated to the submitter");
  }, 120_000);
});
