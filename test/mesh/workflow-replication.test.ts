import * as A from "@automerge/automerge";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/create-node.js";
import { actorIdOf } from "../../node/device-actor.js";
import { signedPatch } from "../../node/sync/index.js";
import { encodeFrame } from "../../protocols/framing/index.js";
import { createSyncCodec, signHeads, SYNC_PROTOCOL } from "../../protocols/sync/index.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { newTaskId } from "../../src/engine/task-id.js";
import { checkWorkflow, documentWorkflowStore, newWorkflowRecord, WORKFLOW_PREFIX, workflowSession } from "../../src/workflows/index.js";
import { runApprovalAdmin } from "../../node/workflows/approval-admin.js";
import { runWorkflowAdmin } from "../../node/workflows/workflow-admin.js";
import type { StepRecord } from "../../src/workflows/workflow-record.js";
import { eventually, formMesh, openRawStream, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const work: AgentExecutor = {
  info: { id: "work", name: "work", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => ({ output: `did[${ctx.request.input}]` }),
};

const GATED = checkWorkflow({ name: "gated", steps: [{ id: "deploy", agent: "work", input: "deploy ${input}", approval: "required" }] });

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * `from` opens a sync stream of its own to `to` and sends patches in one
 * message, as modified code would. `from`'s own sync must be stopped first, so
 * that these are the only copies `to` is offered (and refuses, and audits).
 */
async function sendPatches(from: CoderClawNode, to: CoderClawNode, items: Array<ReturnType<typeof signedPatch>>): Promise<void> {
  const codec = createSyncCodec();
  const stream = await openRawStream(from, to, SYNC_PROTOCOL);
  stream.send(encodeFrame(codec.encode({ t: "patch", items }), codec.maxMessageBytes));
}

describe("workflow documents replicate from their coordinator", () => {
  it("a member shows a workflow another coordinates, waiting for approval, and the decision once made; it never drives it", async () => {
    const started = await startNodes(3, (i) => ({ agents: i === 2 ? [work] : [] }));
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [admin, , owner] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await eventually(async () => owner.security.current.grants.statements().length >= 2, 15_000, "grants in force on the owner");
    const { id } = await owner.workflows.startChecked(GATED, "v1");
    expect(id.endsWith(newTaskId(Date.now(), owner.peerId).slice(-12))).toBe(true);
    await eventually(async () => (await admin.workflows.get(id))?.steps.deploy?.reason === "awaiting approval", 15_000, "the waiting step replicated to the admin");
    const seen = (await admin.workflows.list()).find((w) => w.id === id)!;
    expect(seen).toMatchObject({ coordinator: owner.peerId, status: "running" });
    await expect(admin.workflows.cancel(id)).rejects.toThrow(/coordinated by/);

    const request = seen.steps.deploy!.approval!.id;
    await admin.approvals.decide(`${id}/deploy/${request}`, true, "ok");
    await eventually(async () => (await admin.workflows.get(id))?.status === "completed", 15_000, "the end replicated to the admin");
    expect((await admin.workflows.get(id))!.steps.deploy!.output).toBe("did[deploy v1]");
  }, 60_000);

  it("refuses a workflow document a member forges in its coordinator's name, and one it claims under another's id", async () => {
    const started = await startNodes(3);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [victim, forger, owner] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    // The forger's node must not push what it writes: each copy refused counts as an offence, and a third
    // cuts the forger off, which could drop the test's own message before it is read.
    await forger.sync.stop();
    // A workflow id of the owner's, written by the forger as the owner's actor and signed by the forger.
    const ownersId = newTaskId(Date.now(), owner.peerId);
    const theirs = documentWorkflowStore(forger.core.store, { actor: actorIdOf(owner.peerId) });
    await theirs.create({ ...newWorkflowRecord(ownersId, GATED, "forged", Date.now()), coordinator: owner.peerId });
    // And one under the owner's id naming the forger as coordinator, as its own actor.
    const claimed = newTaskId(Date.now(), owner.peerId);
    await documentWorkflowStore(forger.core.store, { actor: actorIdOf(forger.peerId) }).create({ ...newWorkflowRecord(claimed, GATED, "claimed", Date.now()), coordinator: forger.peerId });
    const patches = await Promise.all(
      [ownersId, claimed].map(async (wid) => {
        const docId = WORKFLOW_PREFIX + wid;
        const doc = (await forger.core.store.get<unknown>(docId))!;
        return signedPatch(docId, [], A.save(doc), signHeads(forger.identity, docId, A.getHeads(doc)));
      }),
    );
    await sendPatches(forger, victim, patches);
    await eventually(async () => (await victim.security.current.getAuditLog({ action: "sync.refused", result: "denied" })).filter((e) => e.body.userId === forger.peerId).length >= 2, 15_000, "both refusals audited on the victim");
    expect(await victim.workflows.get(ownersId)).toBeUndefined();
    expect(await victim.workflows.get(claimed)).toBeUndefined();
  }, 60_000);

  it("a restarted coordinator takes up only its own tasks: a member's task carrying a step's key and the workflow's session is not taken as that step's", async () => {
    const dirs = [tempDir("cc-wfr-f-"), tempDir("cc-wfr-m-")];
    cleanups.push(async () => dirs.forEach((d) => d.remove()));
    const options = (dataDir: string): NodeOptions => ({ dataDir, mdns: false, agents: createBuiltinRegistry([]), leaseIntervalMs: 200, leaseTimeoutMs: 1500, inboundConnectionThreshold: 100 });
    let f = await createNode(options(dirs[0]!.path));
    const m = await createNode(options(dirs[1]!.path));
    cleanups.push(() => m.stop(), () => f.stop());
    await formMesh([f, m], "verified");
    const flow = checkWorkflow({
      name: "two steps",
      steps: [
        { id: "wait", agent: "echo", input: "w ${input}", approval: "required" },
        { id: "use", agent: "echo", input: "used ${steps.wait.output}", dependsOn: ["wait"] },
      ],
    });
    const { id } = await f.workflows.startChecked(flow, "v1");
    // M runs a task of its own in the workflow's session, under the key the coordinator's next step will have.
    const forged = await m.adapter.submitTask({ description: "forged", input: "FORGED", agentId: "echo", sessionId: workflowSession(id), metadata: { idempotencyKey: `${id}/use/1` } }, { route: "local" });
    await eventually(async () => (await f.core.engine.getTask(forged.id))?.status === "completed", 15_000, "M's task replicated to the coordinator");

    await f.stop();
    f = await createNode(options(dirs[0]!.path));
    await f.dial(m.multiaddrs()[0]!);
    await eventually(async () => (await f.workflows.get(id))?.steps.wait?.approval !== undefined, 15_000, "the step awaiting approval");
    const request = (await f.workflows.get(id))!.steps.wait!.approval!.id;
    await f.approvals.decide(`${id}/wait/${request}`, true, "ok");
    await eventually(async () => (await f.workflows.get(id))?.status !== "running", 15_000, "the workflow ended");
    const done = (await f.workflows.get(id))!;
    expect(done.steps.use!.attempts[0]!.taskId).not.toBe(forged.id);
    expect(done.steps.use!.output).toBe("used w v1");
    // What a restart after a crash between a try's submission and its record finds its task by.
    for (const step of Object.values(done.steps)) expect((await f.core.engine.getTask(step.attempts[0]!.taskId!))?.executorId).toBe(f.peerId);
  }, 60_000);

  it("a member's own workflow documents holding what no coordinator writes (a step record that is none, an approval with no times, a layout 1 definition that does not check) do not break other members' listings", async () => {
    const started = await startNodes(2);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [victim, member] = started.nodes as [CoderClawNode, CoderClawNode];
    const own = documentWorkflowStore(member.core.store, { actor: actorIdOf(member.peerId) });
    const bad = newTaskId(Date.now(), member.peerId);
    await own.create({ ...newWorkflowRecord(bad, GATED, "x", Date.now()), coordinator: member.peerId });
    await own.update(bad, { steps: { deploy: { status: "pending", attempts: [], approval: { id: "r", askedAt: "soon", deadline: "never" } } as unknown as StepRecord, ghost: null as unknown as StepRecord } });
    const old = newTaskId(Date.now(), member.peerId);
    const fixed = JSON.stringify({ definition: { name: "old", description: "", steps: [null] }, input: "", createdAt: Date.now() });
    await member.core.store.update(WORKFLOW_PREFIX + old, () => A.from({ v: 1, id: new A.ImmutableString(old), coordinator: new A.ImmutableString(member.peerId), fixed: new A.ImmutableString(fixed), status: new A.ImmutableString("running") }, { actor: actorIdOf(member.peerId) }));
    const good = (await member.workflows.startChecked(checkWorkflow({ name: "fine", steps: [{ id: "a", agent: "echo", input: "a" }] }), "")).id;
    await eventually(async () => (await victim.workflows.get(good).catch(() => undefined))?.status === "completed", 20_000, "the member's documents replicated");
    await eventually(async () => (await victim.core.store.get(WORKFLOW_PREFIX + bad)) !== undefined, 20_000, "the odd document replicated");
    const listed = (await runWorkflowAdmin(victim.workflows, "workflow.list", {})) as Array<{ id: string }>;
    expect(listed.map((w) => w.id)).toContain(good);
    expect(listed.map((w) => w.id)).not.toContain(bad);
    expect(await runApprovalAdmin(victim.approvals, victim.taskApprovals, "approval.list", {})).toEqual([]);
    expect(await victim.core.store.get(WORKFLOW_PREFIX + old)).toBeUndefined();
  }, 60_000);
});
