import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { CoderClawNode } from "../../node/index.js";
import { illegal } from "../helpers/histories.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

/** Every run of every input, as side effects a second execution would repeat. */
const runs = new Map<string, number>();

/** Has a side effect, so it must run once: not retryable. */
const sideEffect: AgentExecutor = {
  info: { id: "side-effect", name: "side effect", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    runs.set(ctx.request.input, (runs.get(ctx.request.input) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 20));
    return { output: `did ${ctx.request.input}` };
  },
};

describe("a flapping link", () => {
  it("20 cuts and restores of the A-B link while 200 tasks are dispatched: none lost, none run twice, every history legal", async () => {
    runs.clear();
    const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [sideEffect] : [], options: { maxConcurrentTasks: 20 } }));
    stop = mesh.stop;
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);

    let flapping = true;
    const flaps = (async () => {
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 150));
        // Hang up and refuse at both gaters; well under the lease, so nothing is presumed lost.
        a.block(b.peerId);
        b.block(a.peerId);
        await new Promise((r) => setTimeout(r, 100));
        a.unblock(b.peerId);
        b.unblock(a.peerId);
        await a.dial(b.multiaddrs()[0]!).catch(() => undefined);
      }
      flapping = false;
    })();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      ids.push((await a.adapter.submitTask({ description: `t${i}`, input: `input ${i}`, agentId: "side-effect" })).id);
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10));
    }
    await flaps;
    expect(flapping).toBe(false);

    try {
      await eventually(async () => (await Promise.all(ids.map((id) => a.adapter.getTaskState(id)))).every((t) => t?.status === "completed"), 120_000, "every task completed");
    } catch (err) {
      // Say which tasks did not end, and what their histories say, before failing.
      const stuck = (await Promise.all(ids.map((id) => a.adapter.getTaskState(id)))).filter((t) => t?.status !== "completed");
      const histories = await Promise.all(stuck.slice(0, 3).map(async (t) => (await a.adapter.getTaskEvents(t!.id)).map((e) => `${e.status}: ${e.message ?? ""}`)));
      throw new Error(`${stuck.length} not completed: ${JSON.stringify(stuck.slice(0, 3).map((t) => [t?.status, t?.placement]))} ${JSON.stringify(histories)}`, { cause: err });
    }
    for (const [i, id] of ids.entries()) {
      expect(runs.get(`input ${i}`), `input ${i}`).toBe(1);
      const events = await a.adapter.getTaskEvents(id);
      expect(illegal(events), id).toBeUndefined();
      expect((await a.adapter.getTaskState(id))?.output).toBe(`did input ${i}`);
    }
    expect([...runs.values()].reduce((x, y) => x + y, 0)).toBe(200);
  }, 240_000);
});
