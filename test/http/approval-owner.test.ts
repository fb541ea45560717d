import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskApprovalView } from "../../node/approvals/task-approvals.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import { httpWorkflows } from "../../node/workflows/http-workflows.js";
import type { OpenApproval, WorkflowRecord } from "../../src/workflows/index.js";
import { eventually, grantedSession, startNodes } from "../helpers/mesh.js";
import { openSse, request, type RawFrame } from "./helpers.js";

const json = { "content-type": "application/json" };
/** One step held for a decision; approved, it sleeps a moment. */
const GATED = ["name: gated", "steps:", "  - id: ship", "    agent: sleep", "    input: '1'", "    approval: required", ""].join("\n");

type Update = { type: string; approval?: unknown };
const updates = (frames: RawFrame[]): Update[] => frames.filter((f) => f.event === "update").map((f) => JSON.parse(f.data) as Update);
const synced = (frames: RawFrame[]): boolean => updates(frames).some((u) => u.type === "synced");

/**
 * An approval request tells of the workflow or task it holds (its id, step,
 * prompt): a caller sees the requests of what it may read, as it sees
 * workflows and tasks, and every request only when it may decide them. A
 * read-only session sees none of another session's, in the listing or the
 * stream, first or later; an approver sees and decides them; the starter sees
 * its own.
 */
describe("approval requests over HTTP are shown to who may read or decide them", () => {
  let node: CoderClawNode;
  let server: HttpServer;
  let stop: () => Promise<void>;
  const tokens = { alice: "", bob: "", carol: "" };

  beforeAll(async () => {
    const mesh = await startNodes(1);
    stop = mesh.stop;
    node = mesh.nodes[0]!;
    await node.createMesh("approval-owner");
    // An approver who is no admin, and tasks of echo held for a decision.
    const policy = ["roles:", "  approver:", "    inherits: [readonly]", "    additionalPermissions: [task:approve]", "agentPolicies:", "  echo:", "    approval: required", ""];
    await node.security.signPolicy("repo", policy.join("\n"));
    const service = node.security.current;
    for (const [who, role, readOnly] of [["alice", "developer", false], ["bob", "readonly", true], ["carol", "approver", false]] as const) {
      tokens[who] = await grantedSession(node, who, [role], { readOnly });
    }
    server = await createHttpServer({ adapter: node.adapter, workflows: httpWorkflows(node.workflows, node.core.store), taskApprovals: node.taskApprovals, ...securityHttpHooks(service, { deviceId: node.peerId }) });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await stop?.();
  });

  const post = (path: string, token: string, body: unknown = {}) => request(server.url, "POST", path, { token, headers: json, body: JSON.stringify(body) });
  const listed = async <T>(path: string, token: string): Promise<T[]> => {
    const answer = await request(server.url, "GET", path, { token });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return (answer.body as { approvals: T[] }).approvals;
  };
  const follow = async (path: string, token: string): Promise<ReturnType<typeof openSse>> => {
    const sse = openSse(server.url, path, token);
    await eventually(() => synced(sse.frames), 10_000, () => `${path} synced: ${JSON.stringify(sse.frames)}`);
    return sse;
  };

  /** What waits for a decision: asked by `ask` (as alice), known by `keyOf` in listings, decided at `decidePath`, done once `done` resolves. */
  interface Held<T> {
    path: string;
    ask(): Promise<string>;
    keyOf(approval: T): string;
    decidePath(approval: T): string;
    done(id: string): Promise<unknown>;
  }

  /**
   * Bob's (read-only) and alice's and carol's (approver) streams open, alice
   * asks; bob sees nothing, listed or streamed, asked before or after his
   * stream opened; alice sees hers; carol sees it and decides it.
   */
  async function onlyOwnerAndApproverSee<T>(held: Held<T>): Promise<void> {
    const events = `${held.path}/events`;
    const streams = { bob: await follow(events, tokens.bob), alice: await follow(events, tokens.alice), carol: await follow(events, tokens.carol) };
    const id = await held.ask();
    const has = (sse: ReturnType<typeof openSse>, type: string): boolean => updates(sse.frames).some((u) => u.type === type);
    await eventually(() => has(streams.carol, "asked") && has(streams.alice, "asked"), 15_000, "the approver and the starter hear it asked");

    const seen = await listed<T>(held.path, tokens.carol);
    expect(seen.map(held.keyOf)).toEqual([id]);
    expect((await listed<T>(held.path, tokens.alice)).map(held.keyOf)).toEqual([id]);
    expect(await listed(held.path, tokens.bob)).toEqual([]);
    // A stream opened while it waits does not list it as open.
    const late = await follow(events, tokens.bob);

    const decided = await post(held.decidePath(seen[0]!), tokens.carol, { reason: "go" });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    await eventually(() => has(streams.carol, "decided") && has(streams.alice, "decided"), 15_000, "the approver and the starter hear it decided");
    await held.done(id);

    for (const sse of [...Object.values(streams), late]) sse.cut();
    expect(updates(streams.alice.frames).map((u) => u.type)).toEqual(["synced", "asked", "decided"]);
    for (const sse of [streams.bob, late]) expect(updates(sse.frames)).toEqual([{ seq: 1, type: "synced" }]);
    // Filtering is no decision worth a line: the reader's listings and streams wrote nothing to the audit log.
    const bobs = await node.security.current.getAuditLog({ userId: "bob" });
    expect(bobs.map((e) => e.body.action)).toEqual(["session.create"]);
  }

  it("a workflow's step held for a decision: seen by its starter and an approver, by no read-only session", async () => {
    await onlyOwnerAndApproverSee<OpenApproval>({
      path: "/v1/approvals",
      ask: async () => {
        const started = await post("/v1/workflows", tokens.alice, { workflow: GATED });
        expect(started.status, JSON.stringify(started.body)).toBe(201);
        return (started.body as WorkflowRecord).id;
      },
      keyOf: (a) => a.workflowId,
      decidePath: (a) => `/v1/approvals/${a.request.id}/approve`,
      done: async (id) => expect((await node.workflows.wait(id)).status).toBe("completed"),
    });
  }, 60_000);

  it("a task a policy holds for a decision: seen by its session and an approver, by no read-only session", async () => {
    await onlyOwnerAndApproverSee<TaskApprovalView>({
      path: "/v1/task-approvals",
      ask: async () => {
        const submitted = await post("/v1/tasks?route=local", tokens.alice, { description: "held", input: "hi", agentId: "echo" });
        expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
        return (submitted.body as { id: string }).id;
      },
      keyOf: (t) => t.taskId,
      decidePath: (t) => `/v1/task-approvals/${t.taskId}/approve`,
      done: async (id) => {
        for await (const _ of node.adapter.streamTaskUpdates(id));
        expect(await node.adapter.getTaskState(id)).toMatchObject({ status: "completed", output: "hi" });
      },
    });
  }, 60_000);
});
