import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskApprovalView } from "../../node/approvals/task-approvals.js";
import type { HttpServer } from "../../node/http/index.js";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";
import { authorize, openSse, request, startServer, TOKENS } from "./helpers.js";

describe("task approvals over HTTP (a node in no mesh, its own security.yaml)", () => {
  let node: CoderClawNode;
  let server: HttpServer;
  let stop: () => Promise<void>;
  const policyDir = tempDir("cc-http-approval-");

  beforeAll(async () => {
    mkdirSync(join(policyDir.path, ".coderClaw"));
    writeFileSync(join(policyDir.path, ".coderClaw", "security.yaml"), "agentPolicies:\n  echo:\n    approval: required\n");
    const mesh = await startNodes(1, () => ({ options: { workspaceDir: policyDir.path } }));
    stop = mesh.stop;
    node = mesh.nodes[0]!;
    server = await startServer(node.adapter, { taskApprovals: node.taskApprovals, subjectOf: (ctx) => ctx.userId, authorize });
  });
  afterAll(async () => {
    await server.close();
    await stop();
    policyDir.remove();
  });

  const post = (path: string, token: string, body: unknown = {}) => request(server.url, "POST", path, { token, body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  const listed = async (): Promise<TaskApprovalView[]> => ((await request(server.url, "GET", "/v1/task-approvals", { token: TOKENS.reader })).body as { approvals: TaskApprovalView[] }).approvals;

  it("lists a held task and streams it asked and decided; a developer may not decide; an admin approves and it runs; a decided or unknown one is 404; bad ids are 400", async () => {
    const sse = openSse(server.url, "/v1/task-approvals/events", TOKENS.reader);
    await eventually(() => sse.frames.some((f) => f.event === "update"), 10_000, "the stream says it is synced");
    const task = await node.adapter.submitTask({ description: "held", input: "hi", agentId: "echo" });
    expect(task.status).toBe("pending");
    const [open] = await listed();
    expect(open).toMatchObject({ ref: `task/${task.id}`, taskId: task.id, rule: "agentPolicies.echo", signer: node.peerId, statementId: "" });

    expect((await post(`/v1/task-approvals/${task.id}/approve`, TOKENS.alice, { reason: "mine" })).status).toBe(403);
    expect((await node.adapter.getTaskState(task.id))?.status).toBe("pending");
    expect((await post(`/v1/task-approvals/not-a-uuid/approve`, TOKENS.admin)).status).toBe(400);
    expect((await post(`/v1/task-approvals/${task.id}/approve`, TOKENS.admin, { reason: "go", extra: 1 })).status).toBe(400);
    expect((await post(`/v1/task-approvals/${crypto.randomUUID()}/approve`, TOKENS.admin)).status).toBe(404);

    const approved = await post(`/v1/task-approvals/${task.id}/approve`, TOKENS.admin, { reason: "go" });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    for await (const _ of node.adapter.streamTaskUpdates(task.id));
    expect(await node.adapter.getTaskState(task.id)).toMatchObject({ status: "completed", output: "hi" });
    expect(await listed()).toEqual([]);
    await eventually(() => sse.frames.filter((f) => f.event === "update").length >= 3, 10_000, "asked and decided streamed");
    sse.cut();
    const events = sse.frames.filter((f) => f.event === "update").map((f) => JSON.parse(f.data) as { type: string; approval?: TaskApprovalView });
    expect(events.map((e) => [e.type, e.approval?.taskId])).toEqual([["synced", undefined], ["asked", task.id], ["decided", task.id]]);
    expect((await post(`/v1/task-approvals/${task.id}/deny`, TOKENS.admin)).status).toBe(404);
    const audit = await node.security.current.getAuditLog({ action: "approval.decide" });
    expect(audit.some((e) => e.body.result === "allowed" && e.body.userId === "root" && e.body.resource === `task/${task.id}`)).toBe(true);
  });

  it("a denial fails the task with its reason", async () => {
    const task = await node.adapter.submitTask({ description: "held", input: "no", agentId: "echo" });
    expect((await post(`/v1/task-approvals/${task.id}/deny`, TOKENS.admin, { reason: "not today" })).status).toBe(200);
    expect(await node.adapter.getTaskState(task.id)).toMatchObject({ status: "failed", error: "approval denied by root: not today" });
  });
});
