import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskState } from "../../src/contract/types.js";
import { tempDir } from "../helpers/temp-dir.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { signTaskApprovalDecision, signTaskApprovalRequest } from "../../src/security/task-approval-statements.js";
import { signStatement } from "../../identity/statement.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { runApprovalAdmin } from "../../node/workflows/approval-admin.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import type { TaskApprovalView } from "../../node/approvals/task-approvals.js";
import { authorize, openSse, startServer, TOKENS } from "../http/helpers.js";

/** Runs on the owner only; every run is counted, so a task that ran without approval, or twice, shows. */
const runs: string[] = [];
const deploy: AgentExecutor = {
  info: { id: "deploy", name: "deploy", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    runs.push(ctx.request.input);
    return { output: `deployed ${ctx.request.input}` };
  },
};

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The mesh's policy, signed by the admin: members may submit; every `deploy` task waits for a decision, at most `timeout`. */
const policy = (timeout: string): string => `remote:\n  allow: true\nagentPolicies:\n  deploy:\n    approval: required\n    approvalTimeout: ${timeout}\n`;

/** Developers may run `shell`, and every shell task waits for a decision. */
const SHELL_POLICY = "remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\nagentPolicies:\n  shell:\n    approval: required\n";

/** Founder `admin`, `developer` (no task:approve) and `owner` (runs `deploy` and `shell`, which the mesh's policy holds for approval). */
async function mesh(timeout = "1h", text = policy(timeout)): Promise<{ admin: CoderClawNode; developer: CoderClawNode; owner: CoderClawNode }> {
  runs.length = 0;
  const started = await startNodes(3, (i) => (i === 2 ? { agents: [deploy, createShellAgent()], options: { sandbox: "off" } } : {}));
  cleanups.push(started.stop);
  await formMesh(started.nodes);
  const [admin, developer, owner] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
  await eventually(async () => owner.security.current.grants.statements().length >= 2, 15_000, "grants in force on the owner");
  await admin.security.signPolicy("repo", text);
  await eventually(() => owner.security.current.approvalFor(text === SHELL_POLICY ? "shell" : "deploy", developer.peerId) !== undefined, 15_000, "the policy in force on the owner");
  return { admin, developer, owner };
}

/** The developer submits a `deploy` task pinned to the owner; it waits there for a decision, listed on every member. */
async function waitingTask(developer: CoderClawNode, owner: CoderClawNode, admin: CoderClawNode, input: string): Promise<{ task: TaskState; attemptId: string; request: string }> {
  const task = await developer.adapter.submitTask({ description: `deploy ${input}`, input, agentId: "deploy" }, { route: owner.peerId });
  await eventually(() => owner.taskApprovals.list().length === 1, 15_000, "the request asked on the owner");
  const [request] = owner.taskApprovals.list();
  expect(request).toMatchObject({ agentId: "deploy", rule: "agentPolicies.deploy", submittedBy: developer.peerId, signer: owner.peerId });
  const attempt = await owner.core.engine.getTask(request!.taskId);
  expect(attempt).toMatchObject({ status: "pending" });
  await eventually(() => [admin, developer].every((n) => n.taskApprovals.list().some((r) => r.taskId === request!.taskId)), 15_000, "the request listed on the other members");
  // The submitter's own view says why its task waits, not that it runs.
  await eventually(async () => (await developer.adapter.getTaskState(task.id))?.placement?.reason === "awaiting approval (agentPolicies.deploy)", 15_000, "the reason on the submitter");
  expect((await developer.adapter.getTaskState(task.id))?.status).toBe("pending");
  return { task, attemptId: request!.taskId, request: request!.statementId };
}

async function ended(node: CoderClawNode, id: string): Promise<TaskState> {
  for await (const _ of node.adapter.streamTaskUpdates(id));
  return (await node.adapter.getTaskState(id))!;
}

describe("tasks held by an approval rule (three nodes)", () => {
  it("waits until an admin on another node approves; a developer's decision is refused and audited; it runs once", async () => {
    const { admin, developer, owner } = await mesh();
    const { task, attemptId } = await waitingTask(developer, owner, admin, "v1");

    await developer.taskApprovals.decide(attemptId, true, "me too");
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => e.body.userId === developer.peerId && /may not approve/.test(e.body.reason ?? "")), 15_000, "the developer's decision refused on the owner");
    expect(runs).toEqual([]);
    expect((await owner.core.engine.getTask(attemptId))?.status).toBe("pending");

    // The developer publishes a decoy request of its own for the owner's task, asked earlier: were it listed, approvers'
    // decisions on `task/<id>` would name it, and the owner would refuse every one of them.
    const decoy = signTaskApprovalRequest(developer.identity, { meshId: owner.membership.meshId!, taskId: attemptId, agentId: "deploy", submittedBy: developer.peerId, description: "decoy", rule: "agentPolicies.deploy", askedAt: 1, deadline: Date.now() + 3600_000 });
    await developer.membership.add([decoy]);
    await eventually(() => admin.statementSet.statements().some((st) => st.id === decoy.id), 15_000, "the decoy on the admin's node");

    // The admin decides as `coderclaw approvals list|approve` does, through the node's admin calls.
    const listed = (await runApprovalAdmin(admin.approvals, admin.taskApprovals, "approval.list", {})) as Array<Record<string, unknown>>;
    expect(listed).toEqual([expect.objectContaining({ id: `task/${attemptId}`, agent: "deploy", rule: "agentPolicies.deploy", holder: owner.peerId, submittedBy: developer.peerId })]);
    await expect(runApprovalAdmin(admin.approvals, admin.taskApprovals, "approval.decide", { id: "task/not-a-task", approve: true })).rejects.toThrow(/task id/);
    await runApprovalAdmin(admin.approvals, admin.taskApprovals, "approval.decide", { id: `task/${attemptId}`, approve: true, reason: "ship it" });
    expect((await ended(developer, task.id)).status).toBe("completed");
    expect(runs).toEqual(["v1"]);
    expect(owner.taskApprovals.list()).toEqual([]);
    const events = await owner.core.engine.getTaskEvents(attemptId);
    expect(events.map((e) => e.message)).toEqual(expect.arrayContaining(["awaiting approval (agentPolicies.deploy)", `approved by ${admin.peerId}: ship it`]));
    const audit = await owner.security.current.getAuditLog({});
    expect(audit.some((e) => e.body.action === "approval.request" && e.body.resource === `task/${attemptId}`)).toBe(true);
    expect(audit.some((e) => e.body.action === "approval.decide" && e.body.result === "allowed" && e.body.userId === admin.peerId)).toBe(true);
    expect((await owner.security.current.verifyAudit()).ok).toBe(true);
  }, 90_000);

  it("a denial fails it with the reason; a decision naming another request, or a late one, is refused; nothing runs", async () => {
    const { admin, developer, owner } = await mesh();
    const { task, attemptId, request } = await waitingTask(developer, owner, admin, "v2");
    const forged = signTaskApprovalDecision(admin.identity, { meshId: owner.membership.meshId!, request: "0".repeat(64), taskId: attemptId, approve: true, reason: "other request" });
    await admin.membership.add([forged]);
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => /names request 0000/.test(e.body.reason ?? "")), 15_000, "the decision on another request refused");
    expect((await owner.core.engine.getTask(attemptId))?.status).toBe("pending");
    // An approval made after the request's deadline (as when the holder was down then, and takes it up on restart) is none.
    const deadline = owner.taskApprovals.list().find((r) => r.taskId === attemptId)!.deadline;
    await admin.membership.add([signStatement(admin.identity, "task-approval-decision", { signer: admin.peerId, meshId: owner.membership.meshId!, request, taskId: attemptId, approve: true, reason: "too late", decidedAt: deadline + 1 })]);
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => /after the request's deadline/.test(e.body.reason ?? "")), 15_000, "the decision made after the deadline refused");
    expect((await owner.core.engine.getTask(attemptId))?.status).toBe("pending");

    await admin.taskApprovals.decide(attemptId, false, "not today");
    const done = await ended(developer, task.id);
    expect(done.status).toBe("failed");
    expect(done.error).toContain("not today");
    // A second decision on the same request, signed properly, comes too late to change anything.
    await admin.membership.add([signTaskApprovalDecision(admin.identity, { meshId: owner.membership.meshId!, request, taskId: attemptId, approve: true, reason: "changed my mind" })]);
    await eventually(async () => (await owner.security.current.getAuditLog({ action: "approval.decide", result: "denied" })).some((e) => /decided already/.test(e.body.reason ?? "")), 15_000, "the late decision refused");
    expect((await owner.core.engine.getTask(attemptId))?.status).toBe("failed");
    expect(runs).toEqual([]);
  }, 90_000);

  it("no decision in time denies it, and another member's approvals stream drops it at its deadline with nothing else happening", async () => {
    const { admin, developer, owner } = await mesh("2s");
    const server = await startServer(admin.adapter, { taskApprovals: admin.taskApprovals, authorize });
    cleanups.push(() => server.close());
    const sse = openSse(server.url, "/v1/task-approvals/events", TOKENS.reader);
    cleanups.push(() => sse.cut());
    const updates = (): Array<{ type: string; approval?: TaskApprovalView }> => sse.frames.filter((f) => f.event === "update").map((f) => JSON.parse(f.data) as { type: string; approval?: TaskApprovalView });
    const { task, attemptId } = await waitingTask(developer, owner, admin, "v3");
    const done = await ended(developer, task.id);
    expect(done.status).toBe("failed");
    expect(done.error).toMatch(/approval denied by timeout: no decision by/);
    expect(runs).toEqual([]);
    // The owner's timer denies it, which no statement tells the admin's node: only the deadline does.
    await eventually(() => updates().some((e) => e.type === "decided" && e.approval?.taskId === attemptId), 15_000, "the request leaves the admin's stream");
    expect(updates().map((e) => e.type)).toEqual(["synced", "asked", "decided"]);
  }, 90_000);

  it("a shell task matching `agentPolicies.shell` waits, and runs (its side effect once) only once an admin approves", async () => {
    const { admin, developer, owner } = await mesh("1h", SHELL_POLICY);
    const dir = tempDir("cc-approval-shell-");
    cleanups.push(() => dir.remove());
    const file = join(dir.path, "effects");
    const task = await developer.adapter.submitTask({ description: "append", input: `echo once >> ${file}`, agentId: "shell" }, { route: owner.peerId });
    await eventually(() => admin.taskApprovals.list().some((r) => r.agentId === "shell"), 15_000, "the request listed on the admin's node");
    const [request] = admin.taskApprovals.list();
    expect(request).toMatchObject({ rule: "agentPolicies.shell", submittedBy: developer.peerId });
    expect(existsSync(file)).toBe(false);
    await admin.taskApprovals.decide(request!.taskId, true, "fine");
    expect((await ended(developer, task.id)).status).toBe("completed");
    expect(readFileSync(file, "utf8")).toBe("once\n");
  }, 90_000);
});
