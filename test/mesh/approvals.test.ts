import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { signApprovalDecision } from "../../src/workflows/approval-statement.js";
import { checkWorkflow } from "../../src/workflows/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

const runs: string[] = [];
const work: AgentExecutor = {
  info: { id: "work", name: "work", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    runs.push(ctx.request.input);
    return { output: `did[${ctx.request.input}]` };
  },
};

const GATED = checkWorkflow({ name: "gated", steps: [{ id: "deploy", agent: "work", input: "deploy ${input}", approval: "required" }] });

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function mesh() {
  runs.length = 0;
  const started = await startNodes(3, (i) => ({ agents: i === 2 ? [work] : [] }));
  cleanups.push(started.stop);
  await formMesh(started.nodes);
  const [admin, developer, owner] = started.nodes as [(typeof started.nodes)[0], (typeof started.nodes)[0], (typeof started.nodes)[0]];
  // The grants the founder signed for the others are in force on the owner: it knows who may approve.
  await eventually(async () => owner.security.current.grants.statements().length >= 2, 15_000, "grants in force on the owner");
  return { admin, developer, owner };
}

describe("approvals across the mesh (three nodes)", () => {
  it("an admin on another node approves: the owner checks the signed decision and runs the step; a developer's decision is refused and audited", async () => {
    const { admin, developer, owner } = await mesh();
    const { id } = await owner.workflows.startChecked(GATED, "v1");
    await eventually(async () => (await owner.approvals.list()).length === 1, 10_000, "the request asked");
    const [request] = await owner.approvals.list();
    expect((await owner.workflows.get(id))!.steps.deploy).toMatchObject({ status: "pending", reason: "awaiting approval" });
    // Visible on the other members, from the replicated workflow document.
    await eventually(async () => (await admin.approvals.list()).some((a) => a.ref === request!.ref), 15_000, "the request listed on the admin's node");

    // A member without task:approve signs a decision: it replicates, and the owner refuses it.
    await developer.approvals.decide(request!.ref, true, "me too");
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => e.body.userId === developer.peerId && /may not approve/.test(e.body.reason ?? "")), 15_000, "the developer's decision refused on the owner");
    expect(await owner.approvals.list()).toHaveLength(1);
    expect(runs).toEqual([]);

    await admin.approvals.decide(request!.ref, true, "ship it");
    const done = await owner.workflows.wait(id);
    expect(done.status).toBe("completed");
    expect(done.steps.deploy!.approval!.decision).toMatchObject({ approved: true, by: admin.peerId, reason: "ship it" });
    expect(runs).toEqual(["deploy v1"]);
    const audit = await owner.security.current.getAuditLog({});
    expect(audit.some((e) => e.body.action === "approval.request" && e.body.resource === request!.ref)).toBe(true);
    expect(audit.some((e) => e.body.action === "approval.decide" && e.body.result === "allowed" && e.body.userId === admin.peerId)).toBe(true);
  }, 60_000);

  it("refuses a decision naming another step of the request, and a new decision on a request decided already", async () => {
    const { admin, owner } = await mesh();
    const { id } = await owner.workflows.startChecked(GATED, "v2");
    await eventually(async () => (await owner.approvals.list()).length === 1, 10_000, "the request asked");
    const [request] = await owner.approvals.list();
    const meshId = owner.membership.meshId!;
    const forged = signApprovalDecision(admin.identity, { meshId, requestId: request!.request.id, workflowId: id, stepId: "other", approve: true, reason: "wrong step" });
    await admin.membership.add([forged]);
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => /but the request is for workflow/.test(e.body.reason ?? "")), 15_000, "the mismatched decision refused");
    expect(await owner.approvals.list()).toHaveLength(1);
    // An approval made after the request's deadline (as when the owner was down then, and takes it up on restart) is none.
    const late = signApprovalDecision(admin.identity, { meshId, requestId: request!.request.id, workflowId: id, stepId: "deploy", approve: true, reason: "too late", decidedAt: request!.request.deadline + 1 });
    await admin.membership.add([late]);
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => /after the request's deadline/.test(e.body.reason ?? "")), 15_000, "the late decision refused");
    expect(await owner.approvals.list()).toHaveLength(1);

    await admin.approvals.decide(request!.ref, false, "not now");
    const done = await owner.workflows.wait(id);
    expect(done.status).toBe("failed");
    expect(done.error).toContain("not now");
    await admin.approvals.decide(request!.ref, true, "changed my mind");
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => /decided already/.test(e.body.reason ?? "")), 15_000, "the late decision refused");
    expect((await owner.workflows.get(id))!.steps.deploy!.approval!.decision!.approved).toBe(false);
    expect(runs).toEqual([]);
  }, 60_000);
});
