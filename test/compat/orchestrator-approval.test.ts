import { afterEach, describe, expect, it } from "vitest";
import { AgentOrchestrator } from "../../node/compat/agent-orchestrator.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const gated = (gate: boolean | { timeoutMs?: number }) => [
  { role: "echo", task: "plan the release" },
  { role: "echo", task: "ship the release", dependsOn: ["plan the release"], requestApproval: gate },
];

describe("Phase 1 orchestrator: a step that requests approval", () => {
  it("waits until approved, then runs; a denied one fails its workflow and never runs", async () => {
    const home = tempDir("cc-orch-approval-");
    cleanups.push(home.remove);
    const orchestrator = new AgentOrchestrator({ dataDir: home.path });

    const approved = orchestrator.createWorkflow(gated(true));
    const results = orchestrator.executeWorkflow(approved.id);
    await eventually(async () => (await orchestrator.getPendingApprovals()).length === 1, 20_000, "the gate asking");
    const [open] = await orchestrator.getPendingApprovals();
    const shipId = [...approved.tasks.values()].find((t) => t.description === "ship the release")!.id;
    expect(open).toMatchObject({ workflowId: approved.id, taskId: shipId, description: "ship the release" });
    expect(approved.tasks.get(shipId)!.status).toBe("pending");
    await orchestrator.approve(open!.id, "looks good");
    const outputs = await results;
    expect([...outputs.keys()].sort()).toEqual([...approved.tasks.keys()].sort());
    expect(orchestrator.getWorkflowStatus(approved.id)?.status).toBe("completed");

    const denied = orchestrator.createWorkflow(gated({ timeoutMs: 60_000 }));
    const deniedResults = orchestrator.executeWorkflow(denied.id);
    await eventually(async () => (await orchestrator.getPendingApprovals()).length === 1, 20_000, "the second gate asking");
    await orchestrator.deny((await orchestrator.getPendingApprovals())[0]!.id, "not today");
    expect((await deniedResults).size).toBe(1);
    const ship = [...denied.tasks.values()].find((t) => t.description === "ship the release")!;
    expect(ship).toMatchObject({ status: "failed" });
    expect(ship.error).toContain("not today");
    expect(orchestrator.getWorkflowStatus(denied.id)?.status).toBe("failed");
    await expect(orchestrator.approve("no-such-request")).rejects.toThrow(/open approval request/);
  }, 60_000);
});
