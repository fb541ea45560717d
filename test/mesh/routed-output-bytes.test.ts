import { afterEach, describe, expect, it } from "vitest";
import { createShellAgent } from "../../src/agents/shell.js";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { bytesBetween, countSocketFlows, flowMark } from "../helpers/socket-flows.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `seq 1 150000` prints 938,895 bytes. */
const LINES = 150_000;
const OUTPUT_BYTES = 938_895;

const total = (flows: Map<string, number>, pick: (from: string, to: string) => boolean): number =>
  [...flows].filter(([k]) => pick(...(k.split(">") as [string, string]))).reduce((s, [, n]) => s + n, 0);

describe("a routed task's output on the wire", () => {
  it("crosses from its executor to its submitter once, not back, and reaches a third member once", async () => {
    countSocketFlows();
    // A and C run no shell; B does, so A's task runs on B as an attempt; C only watches.
    const mesh = await startNodes(3, (i) => ({ agents: i === 1 ? [createShellAgent()] : [], options: { sandbox: "off" } }));
    cleanups.push(mesh.stop);
    const [a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    await eventually(async () => (await a.directory.members()).length === 2, 10_000, "A sees B and C");

    const mark = flowMark();
    const task = await a.adapter.submitTask({ description: "seq", input: `seq 1 ${LINES}`, agentId: "shell" });
    await eventually(async () => (await a.adapter.getTaskState(task.id))?.status === "completed", 60_000, "the task completed on A");
    const done = await a.core.engine.getTask(task.id);
    expect(Buffer.byteLength(done!.output ?? "")).toBe(OUTPUT_BYTES);
    // Every member holds the task's outcome, output included, in its replica of A's document.
    for (const [name, n] of [["B", b], ["C", c]] as const) {
      await eventually(async () => (await n.core.engine.getTask(task.id))?.output === done!.output, 20_000, `${name} holds the task's output`);
    }
    // Then until nothing but the mesh's background traffic moves (leases, audit tips) for half a second.
    const moved = async (): Promise<number> => {
      const before = total(bytesBetween(mesh.nodes, mark), () => true);
      await new Promise((r) => setTimeout(r, 500));
      return total(bytesBetween(mesh.nodes, mark), () => true) - before;
    };
    await eventually(async () => (await moved()) < 16 * 1024, 30_000, "the wire quiet");
    const flows = bytesBetween(mesh.nodes, mark);
    const fromB = total(flows, (from) => from === "1");
    const toC = total(flows, (_, to) => to === "2");
    console.log(JSON.stringify({ outputBytes: OUTPUT_BYTES, flows: Object.fromEntries(flows), fromExecutor: fromB, toThirdMember: toC }));

    // B's own document of the attempt stays home: it sends C nothing of the output, and A only the task stream.
    expect(total(flows, (from, to) => from === "1" && to === "2"), "bytes B sent C").toBeLessThan(0.15 * OUTPUT_BYTES);
    expect(fromB, "bytes B sent").toBeLessThan(1.25 * OUTPUT_BYTES);
    // Nor does the output come back to B inside A's document: B puts back the text it streamed A itself.
    expect(total(flows, (from, to) => from === "0" && to === "1"), "bytes A sent B").toBeLessThan(0.15 * OUTPUT_BYTES);
    // C gets the output once, in A's document of the task, whose history holds it (as JSON: its newlines escaped).
    expect(toC, "bytes C received").toBeLessThan(1.4 * OUTPUT_BYTES);

    // A member still reads the attempt where it runs, on demand.
    const attemptId = done!.placement!.attemptId!;
    expect(await c.core.engine.getTask(attemptId), "C holds no replica of the attempt").toBeNull();
    const attempt = await c.adapter.getTaskState(attemptId);
    expect(attempt?.status).toBe("completed");
    expect(attempt?.output === done!.output).toBe(true);
  }, 120_000);
});
