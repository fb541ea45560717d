import { afterEach, describe, expect, it } from "vitest";
import { handleFramed } from "../../protocols/framing/pool.js";
import { createTaskCodec, TASK_PROTOCOL, type TaskMessage } from "../../protocols/task/messages.js";
import { presumedLost } from "../../protocols/task/lease.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

/** About 5 s of steps, reporting progress. */
function slowAgent(id: string, retryable: boolean): AgentExecutor {
  return {
    info: { id, name: id, description: "", capabilities: [] },
    resumable: false,
    retryable,
    availability: () => ({ available: true }),
    execute: async (ctx) => {
      for (let i = 1; i <= 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        ctx.progress(i, `step ${i}`);
      }
      return { output: `finished by ${id}` };
    },
  };
}

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

/** Cut the link between two nodes both ways: each hangs up and refuses the other at its gater. */
function cut(x: CoderClawNode, y: CoderClawNode): void {
  x.block(y.peerId);
  y.block(x.peerId);
}

async function heal(x: CoderClawNode, y: CoderClawNode): Promise<void> {
  x.unblock(y.peerId);
  y.unblock(x.peerId);
  await x.dial(y.multiaddrs()[0]!);
}

describe("executor leases", () => {
  it("re-places a retryable task whose member went silent, and waits for the member of a non-retryable one, which ends it with its real outcome", async () => {
    const options = { leaseTimeoutMs: 1500, leaseIntervalMs: 200 };
    const mesh = await startNodes(3, (i) => ({
      agents: i === 0 ? [] : i === 1 ? [slowAgent("slow-retry", true)] : [slowAgent("slow-once", false), slowAgent("slow-retry", true)],
      options,
    }));
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    // B is out of reach at first, so both tasks go to C.
    cut(a, b);
    await eventually(async () => (await a.directory.members()).every((m) => m.peerId !== b.peerId), 10_000, "A no longer sees B");

    const once = await a.adapter.submitTask({ description: "once", input: "x", agentId: "slow-once" });
    const retry = await a.adapter.submitTask({ description: "retry", input: "x", agentId: "slow-retry" });
    expect(once.placement?.runsOn).toBe(c.peerId);
    expect(retry.placement?.runsOn).toBe(c.peerId);

    let cutAt = 0;
    const follow = async (id: string): Promise<TaskUpdateEvent[]> => {
      const seen: TaskUpdateEvent[] = [];
      for await (const u of a.adapter.streamTaskUpdates(id)) {
        seen.push(u);
        if (u.progress === 3 && cutAt === 0) {
          cutAt = Date.now();
          cut(a, c);
          await heal(a, b);
          // C comes back once the retryable task has gone elsewhere; the other task has waited for it.
          setTimeout(() => void heal(a, c), 4000);
        }
      }
      return seen;
    };
    const [onceUpdates, retryUpdates] = await Promise.all([follow(once.id), follow(retry.id)]);

    const replaced = retryUpdates.find((u) => u.message?.includes("re-placing"));
    expect(replaced, JSON.stringify(retryUpdates.map((u) => u.message))).toBeDefined();
    expect(retryUpdates.at(-1)?.status).toBe("completed");
    expect(retryUpdates.map((u) => u.seq)).toEqual(retryUpdates.map((_, i) => i + 1));
    const final = await a.adapter.getTaskState(retry.id);
    expect(final?.status).toBe("completed");
    expect(final?.placement?.runsOn).toBe(b.peerId);
    expect(final?.placement?.attempt).toBe(2);
    // C, cut off, stopped its copy before A re-placed it: it did not also finish it.
    const first = await c.core.engine.getTask(retry.placement!.attemptId!);
    expect(first?.status).toBe("failed");
    expect(first?.error).toMatch(/^superseded: lease lost/);

    // Never declared failed while C, unreachable, still ran it: it ends as C ran it.
    expect(onceUpdates.some((u) => u.message?.includes("unreachable"))).toBe(true);
    expect(onceUpdates.filter((u) => u.status === "failed")).toEqual([]);
    expect(onceUpdates.at(-1)?.status).toBe("completed");
    expect((await a.adapter.getTaskState(once.id))?.output).toBe("finished by slow-once");
    // One task, one outcome, wherever it is read.
    await eventually(async () => (await c.adapter.getTaskState(once.id))?.status === "completed", 30_000, "C agrees");
  }, 60_000);

  it("a member's lease rounds count only for the tasks it executes: it can neither end another executor's task nor keep a dead one's alive", async () => {
    const mesh = await startNodes(3, (i) => ({ agents: i === 1 ? [slowAgent("slow", true)] : [] }));
    stop = mesh.stop;
    const [a, b, m] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    const ended = await a.client.submit(b.peerId, { description: "ended by M?", input: "x", agentId: "slow" });
    const kept = await a.client.submit(b.peerId, { description: "kept by M?", input: "x", agentId: "slow" });
    expect(a.client.leaseOf(ended.id)?.status).toBe("running");

    // M runs modified code: its task server answers every request and, unasked, sends lease rounds naming B's tasks.
    await m.libp2p.unhandle(TASK_PROTOCOL);
    const forged: Array<Promise<void>> = [];
    await handleFramed<TaskMessage>(m.libp2p, TASK_PROTOCOL, {
      codec: createTaskCodec(),
      accept: () => true,
      onChannel: (channel) => {
        void channel.send({ t: "lease", round: 1, tasks: [{ id: ended.id, status: "completed" }] });
        const timer = setInterval(() => void channel.send({ t: "lease", round: 2, tasks: [{ id: kept.id, status: "running" }] }).catch(() => undefined), 100);
        forged.push(
          (async () => {
            for await (const message of channel) if (message.t === "get") await channel.send({ t: "state", rid: message.rid, state: null });
          })().finally(() => clearInterval(timer)),
        );
      },
    });
    expect(await a.client.get(m.peerId, ended.id)).toBeNull();
    await new Promise((r) => setTimeout(r, 300));
    expect(a.client.leaseOf(ended.id)?.status, "B's task is still leased by B").toBe("running");

    // B dies: nothing M says keeps its task from being presumed lost once the lease runs out.
    await b.stop();
    await eventually(() => presumedLost(a.client.leaseOf(kept.id), 0, 1500), 5_000, "B's task presumed lost");
  }, 60_000);
});
