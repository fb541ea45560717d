import { afterEach, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { openLocalCore } from "../../src/runtime/local-core.js";
import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { CoderClawRuntime } from "../../src/transport/runtime.js";
import { AWAITING_APPROVAL, checkWorkflow, createWorkflowCoordinator, documentWorkflowStore, parseWorkflowFile, type ApprovalEvent, type WorkflowCoordinator } from "../../src/workflows/index.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Runs of the gated step's agent: a gate that lets a denied step run shows here. */
let runs: string[] = [];

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

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  runs = [];
  const dir = tempDir("cc-appr-");
  const core = await openLocalCore({ dataDir: dir.path, agents: createBuiltinRegistry([work]), maxConcurrentTasks: 4 });
  const runtime = new CoderClawRuntime(new LocalTransportAdapter(core), "local-only");
  const events: ApprovalEvent[] = [];
  const coordinators: WorkflowCoordinator[] = [];
  cleanups.push(async () => {
    for (const c of coordinators) await c.stop();
    await core.close();
    dir.remove();
  });
  return {
    events,
    coordinator: () => {
      const c = createWorkflowCoordinator({ runtime, store: documentWorkflowStore(core.store), onApproval: (e) => events.push(e) });
      coordinators.push(c);
      return c;
    },
  };
}

const gated = (timeoutMs?: number) =>
  checkWorkflow({
    name: "gated",
    steps: [
      { id: "plan", agent: "work", input: "plan" },
      { id: "deploy", agent: "work", input: "deploy ${steps.plan.output}", dependsOn: ["plan"], approval: "required", ...(timeoutMs !== undefined && { approvalTimeoutMs: timeoutMs }) },
    ],
  });

describe("approval gates of workflow steps", () => {
  it("waits pending, awaiting approval, once its dependencies are done; approved, it runs", async () => {
    const { coordinator, events } = await setup();
    const c = coordinator();
    const { id } = await c.start(gated(), "");
    await eventually(async () => c.approvals().length === 1, 10_000, "the approval asked");
    const record = (await c.get(id))!;
    expect(record.steps.plan!.status).toBe("completed");
    expect(record.steps.deploy).toMatchObject({ status: "pending", reason: AWAITING_APPROVAL, attempts: [] });
    await eventually(async () => events.some((e) => e.type === "asked"), 5_000, "the asked event");
    expect(runs).toEqual(["plan"]);
    const [open] = c.approvals();
    expect(open).toMatchObject({ workflowId: id, stepId: "deploy", agent: "work" });
    await c.decide(open!.request.id, { approved: true, by: "someone", reason: "looks fine", at: Date.now() });
    const done = await c.wait(id);
    expect(done.status).toBe("completed");
    expect(done.steps.deploy!.approval!.decision).toMatchObject({ approved: true, by: "someone", reason: "looks fine" });
    expect(runs).toEqual(["plan", "deploy did[plan]"]);
    expect(events.map((e) => e.type)).toEqual(["asked", "decided"]);
  });

  it("denied, the step fails without running and the workflow fails with the reason", async () => {
    const { coordinator } = await setup();
    const c = coordinator();
    const { id } = await c.start(gated(), "");
    await eventually(async () => c.approvals().length === 1, 10_000, "the approval asked");
    await c.decide(c.approvals()[0]!.request.id, { approved: false, by: "someone", reason: "not today", at: Date.now() });
    const done = await c.wait(id);
    expect(done.status).toBe("failed");
    expect(done.error).toContain("approval denied by someone: not today");
    expect(runs).toEqual(["plan"]);
  });

  it("denies when no decision comes in time", async () => {
    const { coordinator } = await setup();
    const c = coordinator();
    const { id } = await c.start(gated(300), "");
    const done = await c.wait(id);
    expect(done.status).toBe("failed");
    expect(done.steps.deploy!.approval!.decision).toMatchObject({ approved: false, reason: "no decision within 300 ms" });
    expect(done.steps.deploy!.approval!.decision!.by).toBeUndefined();
    expect(runs).toEqual(["plan"]);
  });

  it("refuses a decision for a request it does not hold open: unknown, or decided already (a replay)", async () => {
    const { coordinator } = await setup();
    const c = coordinator();
    const { id } = await c.start(gated(), "");
    await eventually(async () => c.approvals().length === 1, 10_000, "the approval asked");
    const request = c.approvals()[0]!.request.id;
    await expect(c.decide("not-a-request", { approved: true, by: "x", reason: "", at: 1 })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await c.decide(request, { approved: false, by: "x", reason: "no", at: 1 });
    await expect(c.decide(request, { approved: true, by: "x", reason: "replayed", at: 2 })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect((await c.wait(id)).status).toBe("failed");
    expect(runs).toEqual(["plan"]);
  });

  it("a coordinator stopped while a step waits: the next one still waits on the same request, and it is decidable", async () => {
    const { coordinator } = await setup();
    const first = coordinator();
    const { id } = await first.start(gated(), "");
    await eventually(async () => (await first.get(id))!.steps.deploy!.approval !== undefined, 10_000, "the approval asked");
    const request = (await first.get(id))!.steps.deploy!.approval!.id;
    await first.stop();
    const second = coordinator();
    expect(await second.resume()).toBe(1);
    expect(second.approvals().map((a) => a.request.id)).toEqual([request]);
    await second.decide(request, { approved: true, by: "later", reason: "ok", at: Date.now() });
    expect((await second.wait(id)).status).toBe("completed");
    expect(runs).toEqual(["plan", "deploy did[plan]"]);
  });

  it("a coordinator down past a request's deadline: restarted, it refuses an approval made after the deadline, and the deadline denies", async () => {
    const { coordinator } = await setup();
    const first = coordinator();
    const { id } = await first.start(gated(400), "");
    await eventually(async () => (await first.get(id))!.steps.deploy!.approval !== undefined, 10_000, "the approval asked");
    const request = (await first.get(id))!.steps.deploy!.approval!;
    await first.stop();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, request.deadline - Date.now()) + 100));
    const second = coordinator();
    expect(await second.resume()).toBe(1);
    // The approver's decision comes after the deadline (the coordinator was down then): it is no decision in time.
    await expect(second.decide(request.id, { approved: true, by: "late", reason: "sorry, late", at: Date.now() })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    const done = await second.wait(id);
    expect(done.status).toBe("failed");
    expect(done.steps.deploy!.approval!.decision).toMatchObject({ approved: false, reason: "no decision within 400 ms" });
    expect(runs).toEqual(["plan"]);
  });

  it("reads approval: required and approvalTimeout from a file, and refuses a timeout on a step without a gate", () => {
    const def = parseWorkflowFile("name: x\nsteps:\n  - id: a\n    approval: required\n    approvalTimeout: 10m\n", "x.yaml");
    expect(def.steps[0]!.approval).toEqual({ timeoutMs: 600_000 });
    expect(() => parseWorkflowFile("name: x\nsteps:\n  - id: a\n    approvalTimeout: 10m\n", "x.yaml")).toThrow(/x\.yaml:4:\d+: steps\[0\]\.approvalTimeout: only a step with approval: required/);
  });
});
