import { afterEach, describe, expect, it } from "vitest";
import { createShellAgent } from "../../src/agents/shell.js";
import type { TaskEvent } from "../../src/contract/types.js";
import type { CoderClawNode } from "../../node/index.js";
import { formMesh, startNodes } from "../helpers/mesh.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Output of the task as a live subscriber on `node` receives it, from its submission to its end. */
async function followOutput(node: CoderClawNode, taskId: string): Promise<{ text: string; ended: TaskEvent }> {
  let text = "";
  let last: TaskEvent | undefined;
  for await (const e of node.core.engine.streamEvents(taskId)) {
    if (e.type === "output_added") text += e.message ?? "";
    last = e;
  }
  return { text, ended: last! };
}

const seq = (n: number): string => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join("");

/** A runs no shell; B does, with the given output limit, and A routes `seq` to it. */
async function routedSeq(n: number, maxOutputBytes?: number): Promise<{ text: string; ended: TaskEvent }> {
  const limits = maxOutputBytes === undefined ? {} : { maxOutputBytes };
  const mesh = await startNodes(2, (i) => ({
    agents: i === 1 ? [createShellAgent(maxOutputBytes === undefined ? {} : { outputLimitBytes: maxOutputBytes })] : [],
    options: { sandbox: "off", ...limits },
  }));
  cleanups.push(mesh.stop);
  const [a] = mesh.nodes as [CoderClawNode, CoderClawNode];
  await formMesh(mesh.nodes);
  const task = await a.adapter.submitTask({ description: "seq", input: `seq 1 ${n}`, agentId: "shell" });
  return followOutput(a, task.id);
}

describe("a routed task's output at a live subscriber on its submitter", () => {
  it("with a raised limit, `seq 1 200000` arrives whole: every line, in order, nothing cut", async () => {
    const { text, ended } = await routedSeq(200_000, 4 * 1024 * 1024);
    expect(ended.status, ended.message).toBe("completed");
    // Compared by length and ends first, so a failure does not print 1.3 MB.
    const expected = seq(200_000);
    expect(text.length).toBe(expected.length);
    expect(text === expected).toBe(true);
  }, 120_000);

  it("past the default limit (1 MiB): a prefix of whole lines, in order, then one marker, last", async () => {
    const { text, ended } = await routedSeq(300_000);
    expect(ended.status).toBe("completed");
    const markers = text.match(/\[output limit of \d+ bytes reached[^\n]*\n/g) ?? [];
    expect(markers).toHaveLength(1);
    expect(text.endsWith(markers[0]!)).toBe(true);
    const lines = text.slice(0, -markers[0]!.length);
    expect(seq(300_000).startsWith(lines)).toBe(true);
    expect(lines.endsWith("\n")).toBe(true);
    expect(Buffer.byteLength(lines)).toBeGreaterThan(1024 * 1024 - 16);
    expect(text).not.toContain("[output history truncated");
  }, 120_000);
});
