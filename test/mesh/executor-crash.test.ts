import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
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
  it("the submitter waits for a killed executor; back, its recovery ends each attempt, and every task gets one outcome that every node agrees on, followed or not", async () => {
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

    // Not retryable (a command with side effects), and retryable (sleep) pinned to C; nobody follows the second.
    const lines = await a.client.submitTask({ description: "lines", input: "", agentId: "slow-lines" });
    const sleepy = await a.client.submitTask({ description: "sleepy", input: "4000 40", agentId: "sleep" }, { route: c.deviceId });
    expect(lines.placement?.runsOn).toBe(c.deviceId);
    expect(sleepy.placement?.runsOn).toBe(c.deviceId);
    for await (const u of a.client.streamTaskUpdates(lines.id)) {
      // Output coalesces under load ("line 2\nline 3\n" is one update): look for the line, not the update's start.
      if (/(^|\n)line 3(\n|$)/.test(u.message ?? "")) break;
    }
    await c.kill();

    // Well past the lease, neither is declared failed: only C can say how the first ended, and the second, retryable, waits for C to run it again.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await a.client.getTaskState(lines.id))?.status).toBe("running");
    expect((await a.client.getTaskEvents(lines.id)).some((e) => e.message?.includes("unreachable"))).toBe(true);
    const replacing = await a.client.getTaskState(sleepy.id);
    expect(replacing?.status).toBe("waiting");
    expect(replacing?.placement?.reason).toBe(`waiting for member ${c.deviceId} to connect`);

    // C comes back: its recovery fails what it was running; the non-retryable task ends so, the retryable one runs again there.
    c = await startNodeProcess(hc, [...args, "--bootstrap", a.addr]);
    await eventually(async () => (await a.client.getTaskState(lines.id))?.status === "failed", 20_000, "the non-retryable task ends");
    expect((await a.client.getTaskState(lines.id))?.error).toBe("interrupted by restart");
    await eventually(async () => (await a.client.getTaskState(sleepy.id))?.status === "completed", 20_000, "the retryable task ends");
    // At least its second attempt: under load a fence may stop one more, and the task is placed again, as it may be.
    expect((await a.client.getTaskState(sleepy.id))?.placement?.attempt).toBeGreaterThanOrEqual(2);
    // One outcome per task, through every API and on every node (C asks A, which keeps them; C's own replica of them is left to replication: see the note on issue 16).
    for (const [id, status] of [[lines.id, "failed"], [sleepy.id, "completed"]] as const) {
      expect((await a.client.listTasks()).find((t) => t.id === id)?.status, id).toBe(status);
      await eventually(async () => (await c.client.getTaskState(id))?.status === status, 30_000, `C agrees on ${id}`);
    }
  }, 180_000);
});
