import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import type { CoderClawNode } from "../../node/index.js";
import { httpWorkflows } from "../../node/workflows/http-workflows.js";
import { checkWorkflow, type OpenApproval, type WorkflowRecord } from "../../src/workflows/index.js";
import { eventually, startNodes } from "../helpers/mesh.js";
import { authorize, openSse, request, startServer, TOKENS } from "./helpers.js";

const GATED = checkWorkflow({ name: "gated", steps: [{ id: "ship", agent: "echo", input: "ship ${input}", approval: "required" }] });

describe("approvals over HTTP", () => {
  let node: CoderClawNode;
  let server: HttpServer;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    const mesh = await startNodes(1);
    stop = mesh.stop;
    node = mesh.nodes[0]!;
    server = await startServer(node.adapter, { workflows: httpWorkflows(node.workflows, node.core.store), subjectOf: (ctx) => ctx.userId, authorize });
  });
  afterAll(async () => {
    await server.close();
    await stop();
  });

  const post = (path: string, token: string, body: unknown = {}) => request(server.url, "POST", path, { token, body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  it("lists a waiting request, streams it asked and decided, refuses a developer's decision and takes an admin's", async () => {
    // An approver's stream: a reader sees only the requests of workflows it may read (test/http/approval-owner.test.ts).
    const sse = openSse(server.url, "/v1/approvals/events", TOKENS.admin);
    // The stream is up (its list of what was open is whole) before anything is asked: else the request comes as open, not asked.
    await eventually(() => sse.frames.some((f) => f.event === "update" && (JSON.parse(f.data) as { type: string }).type === "synced"), 10_000, "the stream synced");
    const { id } = await node.workflows.startChecked(GATED, "v1");
    await eventually(() => node.workflows.approvals().length === 1, 10_000, "the request asked");
    const listed = async (token: string): Promise<OpenApproval[]> => ((await request(server.url, "GET", "/v1/approvals", { token })).body as { approvals: OpenApproval[] }).approvals;
    const [open] = await listed(TOKENS.admin);
    expect(open).toMatchObject({ workflowId: id, stepId: "ship" });
    // Started by the node's owner, the workflow is no session's: a reader may not read it, nor see its request.
    expect(await listed(TOKENS.reader)).toEqual([]);

    const refused = await post(`/v1/approvals/${open!.request.id}/approve`, TOKENS.alice, { reason: "mine" });
    expect(refused.status).toBe(403);
    expect(node.workflows.approvals()).toHaveLength(1);
    const wrong = await post(`/v1/approvals/${crypto.randomUUID()}/approve`, TOKENS.admin);
    expect(wrong.status).toBe(404);

    const approved = await post(`/v1/approvals/${open!.request.id}/approve`, TOKENS.admin, { reason: "go" });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    const done: WorkflowRecord = await node.workflows.wait(id);
    expect(done.status).toBe("completed");
    expect(done.steps.ship!.approval!.decision).toMatchObject({ approved: true, by: "root", reason: "go" });
    const replayed = await post(`/v1/approvals/${open!.request.id}/deny`, TOKENS.admin);
    expect(replayed.status).toBe(404);

    await eventually(() => sse.frames.filter((f) => f.event === "update").length >= 3, 10_000, "asked and decided streamed");
    sse.cut();
    const types = sse.frames.filter((f) => f.event === "update").map((f) => (JSON.parse(f.data) as { type: string }).type);
    expect(types).toEqual(["synced", "asked", "decided"]);
    const audit = await node.security.current.getAuditLog({ action: "approval.decide" });
    expect(audit.some((e) => e.body.result === "allowed" && e.body.userId === "root")).toBe(true);
  });
});
