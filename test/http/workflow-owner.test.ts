import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import { httpWorkflows } from "../../node/workflows/http-workflows.js";
import { parseWorkflowFile, type WorkflowRecord } from "../../src/workflows/index.js";
import { grantedSession, startNodes } from "../helpers/mesh.js";
import { openSse, request } from "./helpers.js";

const json = { "content-type": "application/json" };
/** One step that sleeps until cancelled. */
const WORKFLOW = ["name: long", "steps:", "  - id: wait", "    agent: sleep", "    input: '60000'", ""].join("\n");

/**
 * A workflow run is the session's that started it, as a task is: another
 * session (of another subject, with the same role) may not read, follow or
 * cancel it, nor see it listed; its own session and an admin may.
 */
describe("workflows over HTTP belong to the session that started them", () => {
  let node: CoderClawNode;
  let server: HttpServer;
  let stop: () => Promise<void>;
  const tokens = { alice: "", bob: "", admin: "" };

  beforeAll(async () => {
    const mesh = await startNodes(1);
    stop = mesh.stop;
    node = mesh.nodes[0]!;
    await node.createMesh("workflow-owner");
    const service = node.security.current;
    for (const [who, roles] of [["alice", ["developer"]], ["bob", ["developer"]], ["root", ["admin"]]] as const) {
      tokens[who === "root" ? "admin" : who] = await grantedSession(node, who, roles);
    }
    server = await createHttpServer({ adapter: node.adapter, workflows: httpWorkflows(node.workflows, node.core.store), ...securityHttpHooks(service, { deviceId: node.peerId }) });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await stop?.();
  });

  it("refuses another subject's session every route, and serves its owner and an admin", async () => {
    const started = await request(server.url, "POST", "/v1/workflows", { token: tokens.alice, headers: json, body: JSON.stringify({ workflow: WORKFLOW }) });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const record = started.body as WorkflowRecord;
    const id = record.id;
    const listed = async (token: string): Promise<string[]> => ((await request(server.url, "GET", "/v1/workflows", { token })).body as { workflows: WorkflowRecord[] }).workflows.map((w) => w.id);

    expect((await request(server.url, "GET", `/v1/workflows/${id}`, { token: tokens.bob })).status).toBe(403);
    expect(await listed(tokens.bob)).not.toContain(id);
    expect(await openSse(server.url, `/v1/workflows/${id}/events`, tokens.bob).ended).toBe(403);
    expect((await request(server.url, "POST", `/v1/workflows/${id}/cancel`, { token: tokens.bob })).status).toBe(403);
    expect((await node.workflows.get(id))!.status).toBe("running");
    const refused = await node.security.current.getAuditLog({ action: "workflow.read" });
    expect(refused.some((e) => e.body.resource === id && e.body.userId === "bob" && e.body.result === "denied")).toBe(true);

    expect((await request(server.url, "GET", `/v1/workflows/${id}`, { token: tokens.alice })).status).toBe(200);
    expect(await listed(tokens.alice)).toContain(id);
    expect((await request(server.url, "GET", `/v1/workflows/${id}`, { token: tokens.admin })).status).toBe(200);
    expect(await listed(tokens.admin)).toContain(id);
    const cancelled = await request(server.url, "POST", `/v1/workflows/${id}/cancel`, { token: tokens.alice });
    expect(cancelled.body).toEqual({ cancelled: true });
    const aliceFollows = openSse(server.url, `/v1/workflows/${id}/events`, tokens.alice);
    expect(await aliceFollows.ended).toBe(200);
    expect(aliceFollows.frames.at(-1)?.event).toBe("end");
    expect((await node.workflows.get(id))!.startedBy).toMatchObject({ subject: "alice" });
  }, 30_000);

  it("keeps a workflow its node's owner started (no session) from every session but an admin's", async () => {
    const { id } = await node.workflows.startChecked(parseWorkflowFile(WORKFLOW, "long.yaml"));
    expect((await request(server.url, "GET", `/v1/workflows/${id}`, { token: tokens.alice })).status).toBe(403);
    expect((await request(server.url, "POST", `/v1/workflows/${id}/cancel`, { token: tokens.alice })).status).toBe(403);
    expect((await request(server.url, "POST", `/v1/workflows/${id}/cancel`, { token: tokens.admin })).body).toEqual({ cancelled: true });
  }, 30_000);
});
