import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import type { CoderClawNode } from "../../node/index.js";
import { httpWorkflows } from "../../node/workflows/http-workflows.js";
import type { WorkflowRecord } from "../../src/workflows/index.js";
import { startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";
import { authorize, openSse, request, startServer, TOKENS } from "./helpers.js";

const WORKFLOW = ["name: greet-twice", "steps:", "  - id: first", "    agent: echo", "    input: 'hello ${input}'", "  - id: second", "    agent: echo", "    dependsOn: [first]", "    input: 'again: ${steps.first.output}'", ""].join("\n");

describe("workflows over HTTP", () => {
  let node: CoderClawNode;
  let server: HttpServer;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    const mesh = await startNodes(1);
    stop = mesh.stop;
    node = mesh.nodes[0]!;
    server = await startServer(node.adapter, {
      workflows: httpWorkflows(node.workflows, node.core.store),
      subjectOf: (ctx) => ctx.userId,
      // Bob may not run the sleep agent: a workflow with a sleep step is refused whole for him.
      authorize: (ctx, action, resource) => (ctx.userId === "bob" && resource.type === "agent" && resource.id === "sleep" ? { allowed: false, reason: "sleep is not for bob" } : authorize(ctx, action, resource)),
    });
  });
  afterAll(async () => {
    await server.close();
    await stop();
  });

  it("starts a workflow from a file's text, streams its record as it changes until it ends, and audits the caller as its starter", async () => {
    const started = await request(server.url, "POST", "/v1/workflows", { token: TOKENS.alice, body: JSON.stringify({ workflow: WORKFLOW, input: "world" }), headers: { "content-type": "application/json" } });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const id = (started.body as WorkflowRecord).id;
    expect(started.headers.location).toBe(`/v1/workflows/${id}`);
    const sse = openSse(server.url, `/v1/workflows/${id}/events`, TOKENS.alice);
    await sse.ended;
    const records = sse.frames.filter((f) => f.event === "update").map((f) => (JSON.parse(f.data) as { workflow: WorkflowRecord }).workflow);
    expect(sse.frames.at(-1)?.event).toBe("end");
    expect(records.at(-1)?.status).toBe("completed");
    // Another session reads it no more than it would one of alice's tasks.
    expect((await request(server.url, "GET", `/v1/workflows/${id}`, { token: TOKENS.reader })).status).toBe(403);
    const read = await request(server.url, "GET", `/v1/workflows/${id}`, { token: TOKENS.alice });
    expect(read.status).toBe(200);
    const second = (read.body as WorkflowRecord).steps.second!;
    expect(second.status).toBe("completed");
    const output = (await node.adapter.getTaskState(second.attempts.at(-1)!.taskId!))?.output;
    expect(output).toBe("again: hello world");
    const audit = await node.security.current.getAuditLog({ action: "workflow.start" });
    expect(audit.some((e) => e.body.resource === id && e.body.userId === "alice" && e.body.result === "allowed")).toBe(true);
    const listed = await request(server.url, "GET", "/v1/workflows", { token: TOKENS.alice });
    expect((listed.body as { workflows: WorkflowRecord[] }).workflows.map((w) => w.id)).toContain(id);
  });

  it("refuses a reader, a step the caller may not run (naming it), and a malformed file (naming line and key), starting nothing", async () => {
    const before = (await node.workflows.list()).length;
    const post = (token: string, body: unknown) => request(server.url, "POST", "/v1/workflows", { token, body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    const reader = await post(TOKENS.reader, { workflow: WORKFLOW });
    expect(reader.status).toBe(403);
    // A caller who may not submit is refused before the node spends its time on the file (a deeply nested 1 MiB of YAML
    // took seconds of its CPU to refuse as malformed).
    const nested = await post(TOKENS.reader, { workflow: `name: x\nsteps: ${"[".repeat(400_000)}` });
    expect(nested.status).toBe(403);
    const sleepy = await post(TOKENS.bob, { workflow: WORKFLOW.replace("dependsOn: [first]\n    input", "dependsOn: [first]\n    input").replace("id: second\n    agent: echo", "id: second\n    agent: sleep") });
    expect(sleepy.status).toBe(403);
    expect(JSON.stringify(sleepy.body)).toContain("step second");
    const broken = await post(TOKENS.alice, { workflow: "name: x\nsteps:\n  - id: a\n    agnet: echo\n" });
    expect(broken.status).toBe(400);
    expect(JSON.stringify(broken.body)).toMatch(/workflow:4:\d+: steps\[0\]\.agnet: unknown key/);
    const unknown = await post(TOKENS.alice, { template: "no-such-template" });
    expect(unknown.status).toBe(400);
    expect((await node.workflows.list()).length).toBe(before);
  });

  it("starts a template by its name from the node's templates, never from a file of that name where the node runs", async () => {
    const dir = tempDir("cc-wf-cwd-");
    const cwd = process.cwd();
    // A checkout the node was started in, holding a file named like a template.
    writeFileSync(join(dir.path, "planning"), ["name: from-the-checkout", "steps:", "  - id: run", "    agent: echo", "    input: 'not a template'", ""].join("\n"));
    process.chdir(dir.path);
    try {
      const started = await request(server.url, "POST", "/v1/workflows", { token: TOKENS.alice, body: JSON.stringify({ template: "planning", input: "x" }), headers: { "content-type": "application/json" } });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      const record = started.body as WorkflowRecord;
      expect(record.definition.name).toBe("planning");
      await node.workflows.cancel(record.id);
    } finally {
      process.chdir(cwd);
      dir.remove();
    }
  });

  it("cancels a running workflow; another caller's unknown id is a 404", async () => {
    const slow = ["name: slow", "steps:", "  - id: wait", "    agent: sleep", "    input: '30000'", ""].join("\n");
    const started = await request(server.url, "POST", "/v1/workflows", { token: TOKENS.alice, body: JSON.stringify({ workflow: slow }), headers: { "content-type": "application/json" } });
    const id = (started.body as WorkflowRecord).id;
    const cancelled = await request(server.url, "POST", `/v1/workflows/${id}/cancel`, { token: TOKENS.alice });
    expect(cancelled.body).toEqual({ cancelled: true });
    expect((await node.workflows.wait(id)).status).toBe("cancelled");
    const missing = await request(server.url, "GET", "/v1/workflows/00000000-0000-4000-8000-000000000000", { token: TOKENS.alice });
    expect(missing.status).toBe(404);
  });
});
