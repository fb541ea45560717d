import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { ATTEMPT_OF } from "../../node/scheduling/attempt-metadata.js";
import type { TaskState } from "../../src/contract/types.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function ended(node: CoderClawNode, id: string): Promise<TaskState> {
  for await (const _ of node.adapter.streamTaskUpdates(id));
  return (await node.adapter.getTaskState(id))!;
}

describe("task pages on a mesh node", () => {
  it("filter by executor finds what ran on a member; a member's page never lists the attempts it ran for others", async () => {
    const started = await startNodes(2);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b] = started.nodes as [CoderClawNode, CoderClawNode];
    await eventually(() => a.membership.isMember(b.peerId) && b.membership.isMember(a.peerId), 15_000, "members");
    const submit = (route: string): Promise<TaskState> => a.adapter.submitTask({ description: route, input: "x", agentId: "echo" }, { route });
    const remote = await Promise.all([submit(b.peerId), submit(b.peerId), submit(b.peerId)]);
    const local = await Promise.all([submit("local"), submit("local")]);
    for (const t of [...remote, ...local]) expect((await ended(a, t.id)).status).toBe("completed");

    const onB = await a.adapter.listTaskPage({ executor: b.peerId.slice(-8), limit: 10 });
    expect(onB.tasks.map((t) => t.id).sort()).toEqual(remote.map((t) => t.id).sort());
    expect(onB.next).toBeUndefined();
    const onA = await a.adapter.listTaskPage({ executor: a.peerId.slice(-8), limit: 10 });
    expect(onA.tasks.map((t) => t.id).sort()).toEqual(local.map((t) => t.id).sort());

    // B ran three attempts; its own listing shows none of them, however small its pages.
    const seen: TaskState[] = [];
    let before: string | undefined;
    do {
      const page = await b.adapter.listTaskPage({ limit: 1, ...(before === undefined ? {} : { before }) });
      seen.push(...page.tasks);
      before = page.next;
    } while (before !== undefined);
    expect(seen.filter((t) => t.metadata?.[ATTEMPT_OF] !== undefined)).toEqual([]);
  }, 90_000);
});
