import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeStatement } from "../../identity/index.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import { httpWorkflows } from "../../node/workflows/http-workflows.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { signRoleGrant } from "../../src/security/index.js";
import { startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";
import { request } from "./helpers.js";

/**
 * A workflow's steps are the caller's submissions: on a node whose own device is
 * an admin, a caller's session must not reach through a workflow what it may not
 * submit as a task (the agent's skills are part of that decision).
 */
describe("workflows over HTTP: the same decision as a task submit", () => {
  let node: CoderClawNode;
  let server: HttpServer;
  let stop: () => Promise<void>;
  let token: string;
  const scratch = tempDir("cc-wf-authority-");

  beforeAll(async () => {
    const mesh = await startNodes(1, () => ({ agents: [createShellAgent()] }));
    stop = mesh.stop;
    node = mesh.nodes[0]!;
    await node.createMesh("workflow-authority");
    const grant = decodeStatement(signRoleGrant(node.identity, { subject: "dev", roles: ["developer"], meshId: node.membership.meshId! }));
    await node.membership.add([grant]);
    const service = node.security.current;
    token = (await service.createSession("dev", node.peerId, ["developer"])).token;
    server = await createHttpServer({
      adapter: node.adapter,
      workflows: httpWorkflows(node.workflows, node.core.store),
      ...securityHttpHooks(service, { deviceId: node.peerId }),
    });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await stop?.();
    scratch.remove();
  });

  it("refuses a developer a shell step (shell-exec is dangerous under the default policy), as it refuses the shell task, running nothing", async () => {
    const marker = join(scratch.path, "ran");
    const json = { "content-type": "application/json" };
    const task = await request(server.url, "POST", "/v1/tasks", { token, headers: json, body: JSON.stringify({ description: "shell", input: `touch ${marker}`, agentId: "shell" }) });
    expect(task.status, JSON.stringify(task.body)).toBe(403);

    const before = (await node.workflows.list()).length;
    const workflow = ["name: sneak", "steps:", "  - id: run", "    agent: shell", `    input: 'touch ${marker}'`, ""].join("\n");
    const started = await request(server.url, "POST", "/v1/workflows", { token, headers: json, body: JSON.stringify({ workflow }) });
    expect(started.status, JSON.stringify(started.body)).toBe(403);
    expect(JSON.stringify(started.body)).toContain("step run");
    expect((await node.workflows.list()).length).toBe(before);
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(marker)).toBe(false);

    const echo = ["name: fine", "steps:", "  - id: say", "    agent: echo", "    input: hello", ""].join("\n");
    const allowed = await request(server.url, "POST", "/v1/workflows", { token, headers: json, body: JSON.stringify({ workflow: echo }) });
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(201);
  }, 30_000);
});
