import { afterEach, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { openLocalCore, type LocalCore } from "../../src/runtime/local-core.js";
import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { CoderClawRuntime } from "../../src/transport/runtime.js";
import { checkWorkflow, createWorkflowCoordinator, documentWorkflowStore, workflowSession, type StepDraft, type WorkflowCoordinator, type WorkflowRecord, type WorkflowRuntime, type WorkflowStore } from "../../src/workflows/index.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Each run's side effect, by input: a second entry for one step is a step completed twice. */
const effects = new Map<string, number>();
/** Failures still to give, by input. */
const failuresLeft = new Map<string, number>();

function agent(id: string, run: (input: string, signal: AbortSignal) => Promise<string>): AgentExecutor {
  return {
    info: { id, name: id, description: "", capabilities: [] },
    resumable: false,
    retryable: false,
    availability: () => ({ available: true }),
    execute: async (ctx) => ({ output: await run(ctx.request.input, ctx.signal) }),
  };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new Error("stopped"));
    });
  });

const AGENTS = [
  agent("work", async (input, signal) => {
    await sleep(150, signal);
    effects.set(input, (effects.get(input) ?? 0) + 1);
    return `did[${input}]`;
  }),
  agent("flaky", async (input) => {
    const left = failuresLeft.get(input) ?? 0;
    if (left > 0) {
      failuresLeft.set(input, left - 1);
      throw new Error(`failing ${left} more`);
    }
    return "finally";
  }),
  agent("tick", async (input) => {
    effects.set(input, (effects.get(input) ?? 0) + 1);
    return `t[${input}]`;
  }),
  agent("slow", async (_input, signal) => {
    await sleep(30_000, signal);
    return "late";
  }),
];

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ core: LocalCore; runtime: CoderClawRuntime; coordinator: (runtime?: WorkflowRuntime) => WorkflowCoordinator; errors: Error[] }> {
  effects.clear();
  const dir = tempDir("cc-wf-");
  const core = await openLocalCore({ dataDir: dir.path, agents: createBuiltinRegistry(AGENTS), maxConcurrentTasks: 8 });
  const runtime = new CoderClawRuntime(new LocalTransportAdapter(core), "local-only");
  const errors: Error[] = [];
  const coordinators: WorkflowCoordinator[] = [];
  cleanups.push(async () => {
    for (const c of coordinators) await c.stop();
    await core.close();
    dir.remove();
  });
  return {
    core,
    runtime,
    errors,
    coordinator: (r = runtime) => {
      const c = createWorkflowCoordinator({ runtime: r, store: documentWorkflowStore(core.store), onError: (_id, e) => errors.push(e) });
      coordinators.push(c);
      return c;
    },
  };
}

/** `runtime` with its submissions made by `submitTask`: a placement that is slow, or refused. */
function withSubmit(runtime: WorkflowRuntime, submitTask: WorkflowRuntime["submitTask"]): WorkflowRuntime {
  return {
    submitTask,
    getTaskState: (taskId) => runtime.getTaskState(taskId),
    streamTaskUpdates: (taskId, o) => runtime.streamTaskUpdates(taskId, o),
    cancelTask: (taskId) => runtime.cancelTask(taskId),
    listTasks: (filter) => runtime.listTasks(filter),
  };
}

const s = (id: string, more: Partial<StepDraft> = {}): StepDraft => ({ id, agent: "work", input: id, ...more });
/** Plan, three steps fanned out from it, and a join that reads all three. */
const FAN = checkWorkflow({
  name: "fan",
  steps: [
    s("plan", { input: "plan ${input}" }),
    s("a", { dependsOn: ["plan"], input: "a after ${steps.plan.output}" }),
    s("b", { dependsOn: ["plan"], input: "b after ${steps.plan.output}" }),
    s("c", { dependsOn: ["plan"], input: "c after ${steps.plan.output}" }),
    s("join", { dependsOn: ["a", "b", "c"], input: "join ${steps.a.output} ${steps.b.output} ${steps.c.output}" }),
  ],
});

function expectOnceEach(): void {
  expect([...effects.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  expect(effects.size).toBe(5);
}

describe("the workflow coordinator over a local runtime", () => {
  it("runs a fan-out and a join: the three in parallel after the plan, the join with all three outputs", async () => {
    const { coordinator } = await setup();
    const c = coordinator();
    const started = await c.start(FAN, "X");
    const done = await c.wait(started.id);
    expect(done.status).toBe("completed");
    expect(done.steps.join!.output).toBe("did[join did[a after did[plan X]] did[b after did[plan X]] did[c after did[plan X]]]");
    const tries = ["a", "b", "c"].map((id) => done.steps[id]!.attempts[0]!);
    // The three ran side by side: each started before any of the others ended.
    for (const x of tries) for (const y of tries) expect(x.startedAt).toBeLessThan(y.endedAt!);
    expectOnceEach();
  });

  it("carries on after its coordinator stops mid-run: a new one over the same store completes it, each step once", async () => {
    const { coordinator } = await setup();
    const first = coordinator();
    const { id } = await first.start(FAN, "Y");
    await eventually(async () => (await first.get(id))!.steps.a!.attempts[0]?.taskId !== undefined, 10_000, "step a submitted");
    await first.stop();
    const second = coordinator();
    expect(await second.resume()).toBe(1);
    const done = await second.wait(id);
    expect(done.status).toBe("completed");
    expect(done.steps.join!.output).toContain("did[a after did[plan Y]]");
    expectOnceEach();
  });

  it("a workflow waited for while a restarted coordinator takes it up is driven once: each step once", async () => {
    const { core, runtime, coordinator } = await setup();
    const first = coordinator();
    const { id } = await first.start(FAN, "W");
    await eventually(async () => (await first.get(id))!.steps.plan!.attempts[0]?.taskId !== undefined, 10_000, "the plan submitted");
    await first.stop();
    const durable = documentWorkflowStore(core.store);
    // A read of the record that takes a while (a cold disk): both find it running and driven by no one meanwhile.
    const slowRead: WorkflowStore = { ...durable, get: async (wid) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      return durable.get(wid);
    } };
    const second = createWorkflowCoordinator({ runtime, store: slowRead });
    cleanups.push(() => second.stop());
    // `workflow show --wait` run as the node starts and takes up what was running.
    const resumed = second.resume();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const [, done] = await Promise.all([resumed, second.wait(id)]);
    expect(done.status).toBe("completed");
    expect(Object.values(done.steps).map((r) => r.attempts.length)).toEqual([1, 1, 1, 1, 1]);
    expectOnceEach();
  });

  it("a step denied while another ends fails the workflow, even when that other step was the last to end", async () => {
    const { core, runtime } = await setup();
    const durable = documentWorkflowStore(core.store);
    let release: () => void = () => undefined;
    let holding = false;
    // The denial's write is slow (a busy disk) and the other step ends meanwhile.
    const slowDecision: WorkflowStore = { ...durable, update: async (wid, change) => {
      if (change.steps?.gate?.approval?.decision !== undefined) {
        holding = true;
        await new Promise<void>((resolve) => (release = resolve));
      }
      return durable.update(wid, change);
    } };
    const c = createWorkflowCoordinator({ runtime, store: slowDecision });
    cleanups.push(() => c.stop());
    const def = checkWorkflow({ name: "gate-and-work", steps: [s("gate", { approval: "required" }), s("other")] });
    const { id } = await c.start(def);
    await eventually(() => c.approvals().length === 1, 10_000, "the approval asked");
    const deciding = c.decide(c.approvals()[0]!.request.id, { approved: false, by: "someone", reason: "no", at: Date.now() });
    await eventually(() => holding, 10_000, "the denial being written");
    await eventually(async () => (await c.get(id))!.steps.other!.status === "completed", 10_000, "the other step completed");
    release();
    await deciding;
    const done = await c.wait(id);
    expect(done.steps.gate!.status).toBe("failed");
    expect(done.status).toBe("failed");
    expect(done.error).toMatch(/step gate failed: approval denied by someone: no/);
  });

  it("finds by its key a step submitted just before a crash, rather than submitting it again", async () => {
    const { coordinator, runtime, errors } = await setup();
    let crashed = false;
    // The runtime takes step b's task, but the answer never reaches the coordinator (as when it dies right after).
    const lossy: WorkflowRuntime = {
      submitTask: async (request, options) => {
        const task = await runtime.submitTask(request, options);
        if (!crashed && String(request.metadata?.idempotencyKey).endsWith("/b/1")) {
          crashed = true;
          throw new Error("connection lost");
        }
        return task;
      },
      getTaskState: (taskId) => runtime.getTaskState(taskId),
      streamTaskUpdates: (taskId, o) => runtime.streamTaskUpdates(taskId, o),
      cancelTask: (taskId) => runtime.cancelTask(taskId),
      listTasks: (filter) => runtime.listTasks(filter),
    };
    const c = coordinator(lossy);
    const { id } = await c.start(FAN, "Z");
    const done = await c.wait(id);
    expect(crashed).toBe(true);
    expect(errors.map((e) => e.message)).toEqual(["connection lost"]);
    expect(done.status).toBe("completed");
    expect(done.steps.b!.attempts).toHaveLength(1);
    expectOnceEach();
  });

  it("finds by its key a lost submission among more tasks than a listing's first page: a wide fan-out's first step runs once", async () => {
    const { coordinator, runtime } = await setup();
    let lost = false;
    // The runtime takes the first step's task, but the answer never comes; its 119 siblings are submitted meanwhile.
    const lossy = withSubmit(runtime, async (request, options) => {
      const task = await runtime.submitTask(request, options);
      if (!lost && String(request.metadata?.idempotencyKey).endsWith("/s0/1")) {
        lost = true;
        throw new Error("connection lost");
      }
      return task;
    });
    const c = coordinator(lossy);
    const WIDE = checkWorkflow({ name: "wide", steps: Array.from({ length: 120 }, (_, i): StepDraft => ({ id: `s${i}`, agent: "tick", input: `w${i}` })) });
    const done = await c.wait((await c.start(WIDE)).id);
    expect(lost).toBe(true);
    expect(done.status).toBe("completed");
    expect(done.steps.s0!.attempts).toHaveLength(1);
    expect([...effects.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(effects.size).toBe(120);
  });

  it("a crash that loses every write still waiting, at any of several points of a fast chain, is taken up by a new coordinator: each step once", async () => {
    const { core, runtime, coordinator } = await setup();
    const CHAIN = checkWorkflow({ name: "chain", steps: Array.from({ length: 12 }, (_, i): StepDraft => ({ id: `s${i}`, agent: "tick", input: i === 0 ? "s0" : `s${i} after \${steps.s${i - 1}.output}`, ...(i > 0 && { dependsOn: [`s${i - 1}`] }) })) });
    for (const writesKept of [0, 1, 2, 3]) {
      effects.clear();
      const durable = documentWorkflowStore(core.store);
      let updates = 0;
      // The crash: from here on nothing reaches storage, and the coordinator is never heard from again.
      const dying: WorkflowStore = { ...durable, update: (id, change) => (updates++ < writesKept ? durable.update(id, change) : new Promise<void>(() => undefined)) };
      const first = createWorkflowCoordinator({ runtime, store: dying });
      const { id } = await first.start(CHAIN, `run ${writesKept}`);
      await eventually(() => effects.size >= 2 + writesKept, 10_000, "some steps run");
      void first.stop();
      const second = coordinator();
      await second.resume();
      const done = await second.wait(id);
      expect(done.status, `writes kept: ${writesKept}`).toBe("completed");
      expect(done.steps.s11!.output).toContain("t[s11 after t[s10 after");
      expect([...effects.entries()].filter(([, n]) => n !== 1), `writes kept: ${writesKept}`).toEqual([]);
      expect(effects.size).toBe(12);
      await second.stop();
    }
  });

  it("retries a failing step with its backoff, keeping every try in its history", async () => {
    const { coordinator } = await setup();
    failuresLeft.set("f", 2);
    const c = coordinator();
    const def = checkWorkflow({ name: "retry", steps: [s("f", { agent: "flaky", input: "f", retry: { attempts: 3, backoffMs: 200, factor: 2 } })] });
    const done = await c.wait((await c.start(def)).id);
    expect(done.status).toBe("completed");
    const tries = done.steps.f!.attempts;
    expect(tries.map((t) => t.outcome)).toEqual(["failed", "failed", "completed"]);
    expect(tries[0]!.error).toMatch(/failing 2 more/);
    expect(tries[1]!.startedAt - tries[0]!.endedAt!).toBeGreaterThanOrEqual(200);
    expect(tries[2]!.startedAt - tries[1]!.endedAt!).toBeGreaterThanOrEqual(400);
  });

  it("fails a step past its timeout, cancels its task, skips what depends on it and fails the workflow", async () => {
    const { coordinator, runtime } = await setup();
    const c = coordinator();
    const def = checkWorkflow({ name: "slow", steps: [s("wait", { agent: "slow", timeoutMs: 300 }), s("after", { dependsOn: ["wait"] })] });
    const done = await c.wait((await c.start(def)).id);
    expect(done.status).toBe("failed");
    expect(done.error).toMatch(/step wait failed: timed out after 300 ms/);
    expect(done.steps.after!.status).toBe("skipped");
    const task = await runtime.getTaskState(done.steps.wait!.attempts[0]!.taskId!);
    await eventually(async () => (await runtime.getTaskState(task!.id))?.status === "cancelled", 5000, "the task cancelled");
  });

  it("cancels a running workflow: its running step's task is cancelled, the rest skipped", async () => {
    const { coordinator, runtime } = await setup();
    const c = coordinator();
    const def = checkWorkflow({ name: "slow", steps: [s("wait", { agent: "slow" }), s("after", { dependsOn: ["wait"] })] });
    const { id } = await c.start(def);
    await eventually(async () => (await c.get(id))!.steps.wait!.attempts[0]?.taskId !== undefined, 10_000, "submitted");
    expect(await c.cancel(id)).toBe(true);
    const done = await c.wait(id);
    expect(done.status).toBe("cancelled");
    expect(done.steps.wait!.status).toBe("cancelled");
    expect(done.steps.after!.status).toBe("skipped");
    expect((await runtime.getTaskState(done.steps.wait!.attempts[0]!.taskId!))!.status).toBe("cancelled");
    expect(await c.cancel(id)).toBe(false);
  });

  it("a workflow cancelled while a step's task is being placed cancels that task once the runtime took it", async () => {
    const { runtime, coordinator } = await setup();
    let release: () => void = () => undefined;
    let placing = false;
    // Placement that takes a while, as a route to a remote member does: the task exists only once it answers.
    const slowPlacement = withSubmit(runtime, async (request, options) => {
      placing = true;
      await new Promise<void>((resolve) => (release = resolve));
      return runtime.submitTask(request, options);
    });
    const c = coordinator(slowPlacement);
    const { id } = await c.start(checkWorkflow({ name: "placing", steps: [s("long", { agent: "slow" })] }));
    await eventually(() => placing, 10_000, "the step being placed");
    expect(await c.cancel(id)).toBe(true);
    expect((await c.wait(id)).status).toBe("cancelled");
    release();
    const session = () => runtime.listTasks({ sessionId: workflowSession(id) });
    await eventually(async () => (await session()).length === 1, 10_000, "the task placed");
    await eventually(async () => (await session())[0]!.status === "cancelled", 10_000, "the placed task of a cancelled workflow cancelled");
  });

  it("a step the runtime refuses (an agent no one has, a submission not permitted) fails with the refusal rather than being submitted again for ever", async () => {
    const { runtime, coordinator, errors } = await setup();
    let permitted = true;
    // The node's owner loses the right to submit the second step's agent while the first runs (a policy published meanwhile).
    const policed = withSubmit(runtime, async (request, options) => {
      if (!permitted) throw new CoderClawError("PERMISSION_DENIED", `agent ${request.agentId} denied by policy`);
      return runtime.submitTask(request, options);
    });
    const c = coordinator(policed);
    const typo = await c.wait((await c.start(checkWorkflow({ name: "typo", steps: [s("a", { agent: "no-such-agent", retry: { attempts: 2, backoffMs: 10 } })] }))).id);
    expect(typo.status).toBe("failed");
    expect(typo.steps.a!.attempts.map((t) => t.error)).toEqual([expect.stringMatching(/no-such-agent/), expect.stringMatching(/no-such-agent/)]);
    const { id } = await c.start(checkWorkflow({ name: "policy", steps: [s("first"), s("second", { dependsOn: ["first"] })] }));
    await eventually(async () => (await c.get(id))!.steps.first!.attempts[0]?.taskId !== undefined, 10_000, "the first step submitted");
    permitted = false;
    const denied = await c.wait(id);
    expect(denied.status).toBe("failed");
    expect(denied.error).toMatch(/step second failed: .*denied by policy/);
    expect(errors).toEqual([]);
  });

  it("a step whose filled input would be gigabytes (an input repeated by its template) fails naming the limit, rather than wedging its workflow", async () => {
    const { coordinator, errors } = await setup();
    const c = coordinator();
    const bomb = checkWorkflow({ name: "bomb", steps: [s("big", { input: "${input}".repeat(4096) })] });
    const done = await c.wait((await c.start(bomb, "x".repeat(256 * 1024))).id);
    expect(done.status).toBe("failed");
    expect(done.steps.big!.error).toMatch(/over the limit of \d+ characters/);
    expect(done.steps.big!.attempts[0]!.taskId).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it("answers a completed workflow's wait before its end is durable, from memory meanwhile; a crash then loses nothing: a new coordinator completes it, each step once", async () => {
    const { core, runtime, coordinator } = await setup();
    const CHAIN = checkWorkflow({ name: "chain", steps: Array.from({ length: 6 }, (_, i): StepDraft => ({ id: `s${i}`, agent: "tick", input: `s${i}`, ...(i > 0 && { dependsOn: [`s${i - 1}`] }) })) });
    const durable = documentWorkflowStore(core.store);
    // No change after the creation ever reaches storage: the end included.
    const dying: WorkflowStore = { ...durable, update: () => new Promise<void>(() => undefined) };
    const first = createWorkflowCoordinator({ runtime, store: dying });
    const { id } = await first.start(CHAIN, "x");
    const done = await first.wait(id);
    expect(done.status).toBe("completed");
    expect((await first.get(id))?.status).toBe("completed");
    done.steps.s0!.status = "failed";
    expect((await first.get(id))?.steps.s0!.status).toBe("completed");
    expect((await first.list()).find((r) => r.id === id)?.status).toBe("completed");
    expect((await durable.get(id))?.status).toBe("running");
    void first.stop();
    const second = coordinator();
    expect(await second.resume()).toBe(1);
    const again = await second.wait(id);
    expect(again.status).toBe("completed");
    expect(Object.values(again.steps).map((r) => r.attempts.length)).toEqual([1, 1, 1, 1, 1, 1]);
    expect([...effects.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(effects.size).toBe(6);
    await eventually(async () => (await durable.get(id))?.status === "completed", 10_000, "the end stored");
  });

  it("submits the first steps while the new record is written, and answers start once it is durable", async () => {
    const { core } = await setup();
    const durable = documentWorkflowStore(core.store);
    let release: () => void = () => undefined;
    const held: WorkflowStore = { ...durable, create: async (record) => {
      await new Promise<void>((resolve) => (release = resolve));
      await durable.create(record);
    } };
    const c = createWorkflowCoordinator({ runtime: new CoderClawRuntime(new LocalTransportAdapter(core), "local-only"), store: held });
    cleanups.push(() => c.stop());
    let started: WorkflowRecord | undefined;
    const starting = c.start(checkWorkflow({ name: "one", steps: [{ id: "only", agent: "tick", input: "early" }] })).then((r) => (started = r));
    await eventually(() => effects.get("early") === 1, 10_000, "the step ran while the record was written");
    expect(started).toBeUndefined();
    release();
    const { id } = await starting;
    expect((await durable.get(id))?.id).toBe(id);
    expect((await c.wait(id)).status).toBe("completed");
    expect(effects.get("early")).toBe(1);
  });

  it("fails start when the new record cannot be written, cancelling the tasks it submitted meanwhile", async () => {
    const { core, runtime } = await setup();
    const durable = documentWorkflowStore(core.store);
    let fail: (err: Error) => void = () => undefined;
    let created: WorkflowRecord | undefined;
    const broken: WorkflowStore = { ...durable, create: (record) => {
      created = record;
      return new Promise<void>((_, reject) => (fail = reject));
    } };
    const c = createWorkflowCoordinator({ runtime, store: broken });
    cleanups.push(() => c.stop());
    const starting = c.start(checkWorkflow({ name: "two", steps: [s("a", { agent: "slow" }), s("b", { agent: "slow" })] }));
    const session = () => runtime.listTasks({ sessionId: workflowSession(created!.id) });
    await eventually(async () => created !== undefined && (await session()).filter((t) => t.status === "running").length === 2, 10_000, "both steps running");
    fail(new Error("disk full"));
    await expect(starting).rejects.toThrow("disk full");
    await eventually(async () => (await session()).every((t) => t.status === "cancelled"), 10_000, "every step's task cancelled");
    expect(await c.list()).toEqual([]);
    expect(await durable.get(created!.id)).toBeUndefined();
  });
});
