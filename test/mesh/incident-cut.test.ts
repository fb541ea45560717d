import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskState } from "../../src/contract/types.js";
import type { CoderClawNode } from "../../node/index.js";
import { illegal } from "../helpers/histories.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

/** Each completed run, by the task its attempt belongs to, with the node that ran it: a second completion is a second side effect. */
const completions = new Map<string, string[]>();

/** About 6 s of steps, then the side effect. */
function worker(id: string, retryable: boolean, node: string): AgentExecutor {
  return {
    info: { id, name: id, description: "", capabilities: [] },
    resumable: false,
    retryable,
    availability: () => ({ available: true }),
    execute: async (ctx) => {
      for (let i = 1; i <= 120; i++) {
        await new Promise((r) => setTimeout(r, 50));
        if (ctx.signal.aborted) throw new Error("stopped");
        ctx.progress(i, `step ${i}`);
      }
      const of = String(ctx.request.metadata?.attemptOf);
      completions.set(of, [...(completions.get(of) ?? []), node]);
      return { output: `done on ${node}` };
    },
  };
}

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/**
 * The incident of issue 16 at its size: a 6 s cut among 4 nodes while 12
 * non-retryable and 12 retryable tasks ran. Before the fix, all 12 of the first
 * were reported `failed: lease expired` while their executors ran them to
 * completion, and all 12 of the second ran on two nodes.
 */
describe("a 6 s cut among 4 nodes with 24 tasks under way", () => {
  it("no non-retryable task is declared failed while it runs, none runs twice, no retryable task completes twice; every history legal; every member agrees", async () => {
    completions.clear();
    const names = ["A", "B", "C", "D"];
    const mesh = await startNodes(4, (i) => ({
      agents: i === 0 ? [] : [worker("once", false, names[i]!), worker("again", true, names[i]!)],
      options: { leaseTimeoutMs: 1500, leaseIntervalMs: 200, maxConcurrentTasks: 12 },
    }));
    stop = mesh.stop;
    const [a, b, c, d] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    await eventually(async () => (await a.directory.members()).length === 3, 10_000, "A sees B, C and D");

    const tasks: TaskState[] = [];
    for (let i = 0; i < 12; i++) tasks.push(await a.adapter.submitTask({ description: `once ${i}`, input: `${i}`, agentId: "once" }));
    for (let i = 0; i < 12; i++) tasks.push(await a.adapter.submitTask({ description: `again ${i}`, input: `${i}`, agentId: "again" }));
    await eventually(async () => (await Promise.all(tasks.map((t) => a.adapter.getTaskState(t.id)))).every((t) => t?.status === "running"), 30_000, "all 24 running");
    const onCut = new Set([b.peerId, c.peerId]);
    const placedBefore = new Map((await Promise.all(tasks.map((t) => a.adapter.getTaskState(t.id)))).map((t) => [t!.id, t!.placement?.runsOn]));
    expect([...placedBefore.values()].filter((p) => p !== undefined && onCut.has(p)).length, "tasks on the members about to be cut off").toBeGreaterThan(8);

    // A loses B and C for 6 s; D stays.
    for (const x of [b, c]) {
      a.block(x.peerId);
      x.block(a.peerId);
    }
    await new Promise((r) => setTimeout(r, 6000));
    const duringCut = await Promise.all(tasks.map((t) => a.adapter.getTaskState(t.id)));
    expect(duringCut.filter((t) => t?.agentId === "once" && t.status === "failed").map((t) => `${t!.id}: ${t!.error}`), "non-retryable tasks declared failed during the cut").toEqual([]);
    for (const x of [b, c]) {
      a.unblock(x.peerId);
      x.unblock(a.peerId);
      await a.dial(x.multiaddrs()[0]!);
    }

    await eventually(async () => (await Promise.all(tasks.map((t) => a.adapter.getTaskState(t.id)))).every((t) => t !== null && TERMINAL.has(t.status)), 60_000, async () => {
      const left = (await Promise.all(tasks.map((t) => a.adapter.getTaskState(t.id)))).filter((t) => t !== null && !TERMINAL.has(t.status));
      return `all 24 ended (left: ${left.map((t) => `${t!.agentId} ${t!.id} ${t!.status} on ${t!.placement?.runsOn === b.peerId ? "B" : t!.placement?.runsOn === c.peerId ? "C" : t!.placement?.runsOn === d.peerId ? "D" : t!.placement?.runsOn} attempt ${t!.placement?.attempt} seq ${t!.placement?.attemptSeq} progress ${t!.progress}${t!.placement?.reason ? ` (${t!.placement.reason})` : ""}`).join("; ")})`;
    });
    const final = new Map((await Promise.all(tasks.map((t) => a.adapter.getTaskState(t.id)))).map((t) => [t!.id, t!]));
    expect([...final.values()].filter((t) => t.status !== "completed").map((t) => `${t.agentId} ${t.id}: ${t.status} ${t.error}`)).toEqual([]);
    // One side effect per task, wherever it ran.
    expect(tasks.filter((t) => completions.get(t.id)?.length !== 1).map((t) => `${t.agentId} ${t.id}: ${completions.get(t.id)?.join(",") ?? "never"}`)).toEqual([]);
    // The non-retryable ones ended where they started; retryable ones cut off ran again, on D or after the cut.
    for (const t of tasks.filter((t) => t.agentId === "once")) expect(final.get(t.id)!.placement?.runsOn, t.id).toBe(placedBefore.get(t.id));
    const moved = tasks.filter((t) => t.agentId === "again" && onCut.has(placedBefore.get(t.id)!));
    for (const t of moved) expect(final.get(t.id)!.placement?.attempt, t.id).toBeGreaterThanOrEqual(2);

    for (const t of tasks) expect(illegal(await a.adapter.getTaskEvents(t.id)), t.id).toBeUndefined();
    // Every member agrees on every outcome, those cut off included.
    for (const [name, member] of [["B", b], ["C", c], ["D", d]] as const) {
      await eventually(async () => (await Promise.all(tasks.map((t) => member.adapter.getTaskState(t.id)))).every((s) => s?.status === "completed"), 30_000, `${name} agrees`);
    }
  }, 120_000);
});
