import { z } from "zod";
import {
  AgentInfoSchema,
  AuditQuerySchema,
  CancelResultSchema,
  ErrorBodySchema,
  HTTP_API_PREFIX,
  RuntimeStatusSchema,
  SkillInfoSchema,
  TaskEventSchema,
  TaskChangesQuerySchema,
  TaskPageQuerySchema,
  TaskStateSchema,
  TaskSubmitQuerySchema,
  TaskSubmitRequestSchema,
  TaskUpdateEventSchema,
} from "../../src/transport/http-wire.js";
import { WorkflowStartSchema } from "./workflow-routes.js";
import { InviteSchema, RevokeSchema, TrustSchema } from "./admin-routes.js";

type JsonSchema = Record<string, unknown>;

/** JSON form (the schema's input side), without the per-document `$schema` key OpenAPI does not want. */
function jsonSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io: "input", unrepresentable: "any" });
  return rest;
}

/** A trust change on one device: its id in the path, a JSON body, and the id of the signed statement it made. */
function deviceWrite(operationId: string, summary: string, body: z.ZodType, made: string): Record<string, unknown> {
  return {
    post: {
      operationId,
      summary,
      parameters: [{ name: "id", in: "path", required: true, description: "A device id (its PeerId)", schema: { type: "string" } }],
      requestBody: { required: true, content: { "application/json": { schema: jsonSchema(body) } } },
      responses: { "200": json({ type: "object", properties: { [made]: { type: "string" } }, required: [made] }, "Done"), ...errorResponses(400, 401, 403, 404) },
    },
  };
}

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

function errorResponses(...statuses: number[]): Record<string, unknown> {
  const descriptions: Record<number, string> = {
    400: "Invalid input: malformed JSON, a field failing validation, or an unknown key",
    401: "Missing, expired or invalid bearer token",
    403: "The caller's roles or policies do not allow this",
    404: "No such task or route",
    409: "The task cannot move to the requested status",
    413: "Request body larger than the configured limit",
    415: "Body is not application/json",
    422: "The agent is unknown or cannot run here now",
    503: "The node is shutting down or overloaded",
  };
  return Object.fromEntries(
    statuses.map((status) => [
      String(status),
      { description: descriptions[status] ?? "Error", content: { "application/json": { schema: ref("Error") } } },
    ]),
  );
}

function queryParameters(schema: z.ZodObject): unknown[] {
  const json = jsonSchema(schema) as { properties?: Record<string, JsonSchema> };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({ name, in: "query", required: false, schema: property }));
}

const taskIdParameter = { name: "id", in: "path", required: true, schema: { type: "string" } };
const json = (schema: JsonSchema, description: string): unknown => ({ description, content: { "application/json": { schema } } });
const readErrors = errorResponses(400, 401, 403, 404);
/** An approval request and the step it gates (src/workflows/workflow-coordinator.ts `OpenApproval`). */
const approval: JsonSchema = {
  type: "object",
  properties: { workflowId: { type: "string" }, workflowName: { type: "string" }, stepId: { type: "string" }, agent: { type: "string" }, request: { type: "object", properties: { id: { type: "string" }, askedAt: { type: "integer" }, deadline: { type: "integer" }, decision: { type: "object" } }, required: ["id", "askedAt", "deadline"] } },
  required: ["workflowId", "workflowName", "stepId", "request"],
};
const approvalDecisionBody: JsonSchema = { type: "object", properties: { reason: { type: "string", maxLength: 1000 } }, additionalProperties: false };
const approvalIdParameter = { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" }, description: "The request's id (`request.id`)" };

/** A task's approval request, as its holder signed it (node/approvals/task-approvals.ts). */
const taskApproval: JsonSchema = {
  type: "object",
  properties: {
    ref: { type: "string", description: "`task/<task id>`, as `coderclaw approvals` takes it" },
    taskId: { type: "string", format: "uuid" },
    agentId: { type: "string" },
    description: { type: "string" },
    rule: { type: "string", description: "The policy rule that holds it, e.g. `agentPolicies.shell`" },
    signer: { type: "string", description: "The node that holds the task (and runs it once approved)" },
    submittedBy: { type: "string" },
    askedAt: { type: "integer" },
    deadline: { type: "integer", description: "No decision by then denies it (ms since the epoch)" },
    statementId: { type: "string" },
  },
  required: ["ref", "taskId", "agentId", "rule", "signer", "deadline"],
};
const taskApprovalDecided: JsonSchema = { type: "object", properties: { taskId: { type: "string", format: "uuid" }, approved: { type: "boolean" } }, required: ["taskId", "approved"] };

/** A workflow's record (src/workflows/workflow-record.ts): `id`, `definition`, `status`, `steps` by id, times, who started it. */
const workflowRecord: JsonSchema = { type: "object", properties: { id: { type: "string" }, status: { type: "string" }, definition: { type: "object" }, steps: { type: "object" }, startedBy: { type: "object", properties: { subject: { type: "string" }, sessionId: { type: "string" } }, required: ["subject"] } }, required: ["id", "status", "definition", "steps"] };

let cached: Record<string, unknown> | undefined;

/**
 * The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`. Built
 * from the same zod schemas that validate requests, so it cannot drift from them.
 */
export function buildOpenApiDocument(): Record<string, unknown> {
  cached ??= {
    openapi: "3.1.0",
    info: {
      title: "CoderClaw node HTTP API",
      version: "1.0.0",
      description:
        "Remote-enabled mode of a CoderClaw node: submit, follow, query and cancel agent tasks. " +
        "Every /v1 route needs `Authorization: Bearer <token>` (a session token or an OIDC JWT).",
    },
    security: [{ bearer: [] }],
    paths: {
      [`${HTTP_API_PREFIX}/tasks`]: {
        post: {
          operationId: "submitTask",
          summary: "Submit a task",
          description:
            "`route` says where to run it: `auto` (the default; a mesh node routes by capability, trust, load and latency), " +
            "`local` (this node), or the peer id of a mesh member. A node that cannot honour the route answers 400 with `field: \"route\"`. " +
            "`tree` sends code with the task: a tree this session uploaded (`/v1/blobs`, `/v1/trees/{id}`), which the node keeps as its own submission; any other tree is refused.",
          parameters: queryParameters(TaskSubmitQuerySchema),
          requestBody: { required: true, content: { "application/json": { schema: ref("TaskSubmitRequest") } } },
          responses: { "201": json(ref("TaskState"), "The accepted task"), ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
        },
        get: {
          operationId: "listTasks",
          summary: "List tasks the caller may read, most recent first, a page at a time",
          description:
            "A page holds at most `limit` tasks but may hold fewer (agent and executor filters and the caller's rights are checked on each task, and one page looks at a bounded number): " +
            "ask again with `before` set to the page's `next` until a page has no `next`.",
          parameters: queryParameters(TaskPageQuerySchema),
          responses: {
            "200": json(
              { type: "object", properties: { tasks: { type: "array", items: ref("TaskState") }, next: { type: "string", description: "`before` of the next (older) page; absent at the oldest" } }, required: ["tasks"] },
              "Tasks",
            ),
            ...errorResponses(400, 401, 403),
          },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}`]: {
        get: {
          operationId: "getTask",
          summary: "A task's current state",
          parameters: [taskIdParameter],
          responses: { "200": json(ref("TaskState"), "The task"), ...readErrors },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/cancel`]: {
        post: {
          operationId: "cancelTask",
          summary: "Request cancellation; `cancelled` is false when the task had already ended",
          parameters: [taskIdParameter],
          responses: { "200": json(ref("CancelResult"), "Whether the task was cancelled"), ...readErrors, ...errorResponses(409) },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/retry`]: {
        post: {
          operationId: "retryTask",
          summary: "Run a failed or cancelled task again as a new task naming it (`parentTaskId`, `metadata.retryOf`); 409 when it has not ended or completed",
          parameters: [taskIdParameter],
          responses: { "201": json(ref("TaskState"), "The new task"), ...readErrors, ...errorResponses(409) },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/patch`]: {
        get: {
          operationId: "getTaskPatch",
          summary: "What a completed task that carried code (`repo`) changed, as a binary-safe git patch (empty when nothing changed); 404 for a task that carried none, 409 before it completed. `grant`: a token the task's submitter made for this node (`coderclaw task grant`), to fetch the changes from any member holding them",
          parameters: [taskIdParameter, ...queryParameters(TaskChangesQuerySchema)],
          responses: { "200": { description: "The patch", content: { "text/x-diff": { schema: { type: "string" } } } }, ...readErrors, ...errorResponses(409) },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/commits`]: {
        get: {
          operationId: "getTaskCommits",
          summary: "The commits the agent of a completed task submitted with `commits` made in its workspace, as `git format-patch --stdout --pretty=mboxrd` writes them (an mbox for `git am --patch-format=mboxrd`; empty when it made none); 404 for a task not submitted with `commits` too, and 409 as for the patch",
          parameters: [taskIdParameter, ...queryParameters(TaskChangesQuerySchema)],
          responses: { "200": { description: "The commits", content: { "application/mbox": { schema: { type: "string" } } } }, ...readErrors, ...errorResponses(409) },
        },
      },
      [`${HTTP_API_PREFIX}/blobs/missing`]: {
        post: {
          operationId: "missingBlobs",
          summary:
            "Of the digests given (SHA-256, lowercase hex; at most 100,000), those this session has not sent: the blobs of a tree it is about to send that the node still needs from it. " +
            "What other sessions sent never counts, so the answer says nothing of what the node holds for them",
          requestBody: { required: true, content: { "application/json": { schema: { type: "object", properties: { digests: { type: "array", items: { type: "string" }, maxItems: 100_000 } }, required: ["digests"] } } } },
          responses: { "200": json({ type: "object", properties: { missing: { type: "array", items: { type: "string" } } }, required: ["missing"] }, "The digests still needed, each once"), ...errorResponses(400, 401, 403, 413, 503) },
        },
      },
      [`${HTTP_API_PREFIX}/blobs`]: {
        post: {
          operationId: "putBlobs",
          summary:
            "Blobs of a tree (its files' chunks of at most 1 MiB, and its manifest's pieces), at most 8 MiB a body: each as its 32-byte SHA-256, its length (4 bytes, big-endian) and its bytes. " +
            "Each is checked against its digest before any is stored; one that does not match refuses the body (400, naming `blobs[i]`). " +
            "What a session sent and has not submitted is held to a budget, and what every session sent or submitted to the node's (507); it is dropped after an hour without a call, and when the node restarts",
          requestBody: { required: true, content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } },
          responses: { "200": json({ type: "object", properties: { stored: { type: "integer" } }, required: ["stored"] }, "How many blobs the body held"), ...errorResponses(400, 401, 403, 413, 503, 507) },
        },
      },
      [`${HTTP_API_PREFIX}/trees/{id}`]: {
        put: {
          operationId: "putTree",
          summary:
            "The index of tree `id` (its SHA-256), once this session sent every piece of its manifest and every blob the manifest names; the manifest is checked against the node's limits (paths, links, sizes, entries). " +
            "Then `POST /v1/tasks?tree=<id>` submits a task carrying it",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-f]{64}$" } }],
          requestBody: { required: true, content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } },
          responses: { "200": json({ type: "object", properties: { tree: { type: "string" }, files: { type: "integer" }, bytes: { type: "integer" } }, required: ["tree", "files", "bytes"] }, "The tree taken"), ...errorResponses(400, 401, 403, 413, 503) },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/artifacts`]: {
        get: {
          operationId: "listTaskArtifacts",
          summary: "The artifacts a completed task that carried code brought back (`artifacts` patterns at submission)",
          parameters: [taskIdParameter, ...queryParameters(TaskChangesQuerySchema)],
          responses: {
            "200": json(
              { type: "object", properties: { artifacts: { type: "array", items: { type: "object", properties: { path: { type: "string" }, size: { type: "integer" } }, required: ["path", "size"] } } }, required: ["artifacts"] },
              "Paths (relative to the task's workspace) and sizes",
            ),
            ...readErrors,
            ...errorResponses(409),
          },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/artifacts/{path}`]: {
        get: {
          operationId: "getTaskArtifact",
          summary: "One artifact's bytes",
          parameters: [taskIdParameter, { name: "path", in: "path", required: true, description: "The artifact's path, as listed", schema: { type: "string" } }, ...queryParameters(TaskChangesQuerySchema)],
          responses: { "200": { description: "The artifact", content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } }, ...readErrors, ...errorResponses(409) },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/history`]: {
        get: {
          operationId: "getTaskHistory",
          summary: "The task's full history so far (created, status_changed, progress_updated, output_added, error_set)",
          parameters: [taskIdParameter],
          responses: {
            "200": json({ type: "object", properties: { events: { type: "array", items: ref("TaskEvent") } }, required: ["events"] }, "History, oldest first"),
            ...readErrors,
          },
        },
      },
      [`${HTTP_API_PREFIX}/tasks/{id}/events`]: {
        get: {
          operationId: "streamTaskEvents",
          summary: "Server-Sent Events: the task's updates, replayed from the start, then live",
          description:
            "Each `update` event carries a TaskUpdateEvent as JSON with `id:` set to its seq. To resume, send " +
            "`Last-Event-ID` (or `?after=<seq>`): only later updates are sent. An `end` event follows the terminal " +
            "status and the stream closes; a stream that closes without `end` should be resumed. An `error` event " +
            "carries an Error body. Comment lines are heartbeats.",
          parameters: [
            taskIdParameter,
            { name: "after", in: "query", required: false, schema: { type: "integer", minimum: 0 } },
            { name: "Last-Event-ID", in: "header", required: false, schema: { type: "integer", minimum: 0 } },
          ],
          responses: {
            "200": {
              description: "An event stream of TaskUpdateEvent",
              content: { "text/event-stream": { schema: ref("TaskUpdateEvent") } },
            },
            ...readErrors,
            ...errorResponses(503),
          },
        },
      },
      [`${HTTP_API_PREFIX}/workflows`]: {
        post: {
          operationId: "startWorkflow",
          summary: "Start a workflow: one of the node's templates by name, or a workflow file's text (YAML, as docs/workflows.md describes); every step must be one the caller may submit, or nothing starts (403 naming the step)",
          requestBody: { required: true, content: { "application/json": { schema: jsonSchema(WorkflowStartSchema) } } },
          responses: { "201": json(workflowRecord, "The workflow as started"), ...errorResponses(400, 401, 403, 413, 415, 503) },
        },
        get: {
          operationId: "listWorkflows",
          summary: "Workflows this node coordinates that the caller's session started (every one, with admin:all), newest first (at most 1,000)",
          responses: { "200": json({ type: "object", properties: { workflows: { type: "array", items: workflowRecord } }, required: ["workflows"] }, "Workflows"), ...errorResponses(401, 403) },
        },
      },
      [`${HTTP_API_PREFIX}/workflows/{id}`]: {
        get: { operationId: "getWorkflow", summary: "A workflow's record: its definition and each step's state and tries", parameters: [taskIdParameter], responses: { "200": json(workflowRecord, "The workflow"), ...readErrors } },
      },
      [`${HTTP_API_PREFIX}/workflows/{id}/cancel`]: {
        post: {
          operationId: "cancelWorkflow",
          summary: "Cancel a running workflow: its running steps' tasks are cancelled, the rest skipped; `cancelled` is false when it had ended",
          parameters: [taskIdParameter],
          responses: { "200": json(ref("CancelResult"), "Whether the workflow was cancelled"), ...readErrors },
        },
      },
      [`${HTTP_API_PREFIX}/workflows/{id}/events`]: {
        get: {
          operationId: "streamWorkflow",
          summary: "Server-sent events: an `update` with `{seq, workflow}` (the record) now and after each change, then `end` once the workflow ended",
          parameters: [taskIdParameter],
          responses: { "200": { description: "An event stream", content: { "text/event-stream": { schema: { type: "string" } } } }, ...readErrors },
        },
      },
      [`${HTTP_API_PREFIX}/approvals`]: {
        get: {
          operationId: "listApprovals",
          summary: "Approval requests this node's workflows wait on (steps with `approval: required`), oldest first: all of them to a caller that may decide them (`task:approve`, not read-only) or holds `admin:all`, to any other those of workflows it may read (its session's)",
          responses: { "200": json({ type: "object", properties: { approvals: { type: "array", items: approval } }, required: ["approvals"] }, "Open requests"), ...errorResponses(401, 403) },
        },
      },
      [`${HTTP_API_PREFIX}/approvals/{id}/approve`]: {
        post: {
          operationId: "approveRequest",
          summary: "Approve an open request of this node (needs `task:approve`, or admin); the step then runs. 404 for a request not open here (unknown, or decided already)",
          parameters: [approvalIdParameter],
          requestBody: { required: false, content: { "application/json": { schema: approvalDecisionBody } } },
          responses: { "200": json(approval, "The request, decided"), ...errorResponses(400, 401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/approvals/{id}/deny`]: {
        post: {
          operationId: "denyRequest",
          summary: "Deny an open request of this node (needs `task:approve`, or admin); the step fails. 404 for a request not open here",
          parameters: [approvalIdParameter],
          requestBody: { required: false, content: { "application/json": { schema: approvalDecisionBody } } },
          responses: { "200": json(approval, "The request, decided"), ...errorResponses(400, 401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/approvals/events`]: {
        get: {
          operationId: "streamApprovals",
          summary: "Server-sent events: an `update` with `{seq, type, approval}` for each open request (`open`), one `{seq, type: \"synced\"}` once they are all sent, then as requests are `asked` and `decided`; the requests the caller may see, as `/approvals` lists them",
          responses: { "200": { description: "An event stream", content: { "text/event-stream": { schema: { type: "string" } } } }, ...errorResponses(401, 403) },
        },
      },
      [`${HTTP_API_PREFIX}/task-approvals`]: {
        get: {
          operationId: "listTaskApprovals",
          summary: "Tasks that a policy rule (`approval: required` on an agent, skill or role) holds for a decision, anywhere in the mesh, oldest first: all of them to a caller that may decide them (`task:approve`, not read-only) or holds `admin:all`, to any other those of tasks it may read (its session's)",
          responses: { "200": json({ type: "object", properties: { approvals: { type: "array", items: taskApproval } }, required: ["approvals"] }, "Open requests"), ...errorResponses(401, 403) },
        },
      },
      [`${HTTP_API_PREFIX}/task-approvals/events`]: {
        get: {
          operationId: "streamTaskApprovals",
          summary: "Server-sent events over task approvals, as `/approvals/events` (`open`, `synced`, `asked`, `decided`), each `approval` a task approval request; the requests the caller may see, as `/task-approvals` lists them",
          responses: { "200": { description: "An event stream", content: { "text/event-stream": { schema: { type: "string" } } } }, ...errorResponses(401, 403) },
        },
      },
      [`${HTTP_API_PREFIX}/task-approvals/{taskId}/approve`]: {
        post: {
          operationId: "approveTask",
          summary: "Approve a task this node holds for a decision (needs `task:approve`, or admin); it then starts. 404 for a task not waiting here (another member's: decide it with `coderclaw approvals`)",
          parameters: [{ name: "taskId", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
          requestBody: { required: false, content: { "application/json": { schema: approvalDecisionBody } } },
          responses: { "200": json(taskApprovalDecided, "Decided"), ...errorResponses(400, 401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/task-approvals/{taskId}/deny`]: {
        post: {
          operationId: "denyTask",
          summary: "Deny a task this node holds for a decision (needs `task:approve`, or admin); it fails with the reason. 404 for a task not waiting here",
          parameters: [{ name: "taskId", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
          requestBody: { required: false, content: { "application/json": { schema: approvalDecisionBody } } },
          responses: { "200": json(taskApprovalDecided, "Decided"), ...errorResponses(400, 401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/agents`]: {
        get: {
          operationId: "listAgents",
          summary: "Agents this node offers",
          responses: {
            "200": json({ type: "object", properties: { agents: { type: "array", items: ref("AgentInfo") } }, required: ["agents"] }, "Agents"),
            ...errorResponses(401, 403),
          },
        },
      },
      [`${HTTP_API_PREFIX}/skills`]: {
        get: {
          operationId: "listSkills",
          summary: "Skills this node offers",
          responses: {
            "200": json({ type: "object", properties: { skills: { type: "array", items: ref("SkillInfo") } }, required: ["skills"] }, "Skills"),
            ...errorResponses(401, 403),
          },
        },
      },
      [`${HTTP_API_PREFIX}/status`]: {
        get: {
          operationId: "getStatus",
          summary: "Health and counters",
          responses: { "200": json(ref("RuntimeStatus"), "Status"), ...errorResponses(401, 403) },
        },
      },
      [`${HTTP_API_PREFIX}/audit`]: {
        get: {
          operationId: "queryAudit",
          summary: "Audit log entries (needs admin:all)",
          parameters: queryParameters(AuditQuerySchema),
          responses: {
            "200": json({ type: "object", properties: { entries: { type: "array", items: {} } }, required: ["entries"] }, "Entries"),
            ...errorResponses(400, 401, 403, 404),
          },
        },
      },
      [`${HTTP_API_PREFIX}/audit/verify`]: {
        get: {
          operationId: "verifyAudit",
          summary: "Verify every stored audit chain (hash, signature, link); `problems` names the first bad entry of each broken chain (needs admin:all)",
          responses: { "200": json({ type: "object", properties: { ok: { type: "boolean" }, authors: { type: "integer" }, entries: { type: "integer" }, problems: { type: "array", items: {} }, forks: { type: "array", items: {} } }, required: ["ok", "authors", "entries", "problems", "forks"] }, "Report"), ...errorResponses(401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/session`]: {
        get: {
          operationId: "getSession",
          summary: "The caller: user, roles, whether the session is read-only, and which writes it may make (submit, cancel, approve, admin); unaudited, for hiding what would be refused and naming the session the dashboard shows",
          responses: { "200": json({ type: "object", properties: { userId: { type: "string" }, roles: { type: "array", items: { type: "string" } }, readOnly: { type: "boolean" }, may: { type: "object", additionalProperties: { type: "boolean" } } }, required: ["userId", "roles", "readOnly", "may"] }, "Session"), ...errorResponses(401) },
        },
      },
      [`${HTTP_API_PREFIX}/mesh`]: {
        get: {
          operationId: "getMesh",
          summary: "This node (id, fingerprint, addresses, mesh, level), its reachability and doctor hints, and each connected member: trust level, path (direct or relayed via), RTT, load, agents",
          responses: { "200": json({ type: "object", properties: { self: {}, reachability: {}, relaysReserved: { type: "array", items: { type: "string" } }, relayServing: { type: "boolean" }, portMapping: { type: "object", description: "ports the home router forwards to this node: state (off, searching, no-router, mapping, mapped, failed) and mappings (by, router, transport, internal, external, leaseSeconds, state, since)" }, hints: { type: "array", items: { type: "string" } }, members: { type: "array", items: {} } } }, "Mesh"), ...errorResponses(401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/devices`]: {
        get: {
          operationId: "listDevices",
          summary: "Every device of the mesh: trust level, revoked, connected, last seen",
          responses: { "200": json({ type: "object", properties: { devices: { type: "array", items: {} } }, required: ["devices"] }, "Devices"), ...errorResponses(401, 403, 404) },
        },
      },
      [`${HTTP_API_PREFIX}/devices/{id}/revoke`]: deviceWrite("revokeDevice", "Revoke a device for good, with a reason (needs admin:all); its connections are dropped", RevokeSchema, "revocation"),
      [`${HTTP_API_PREFIX}/devices/{id}/trust`]: deviceWrite("trustDevice", "Certify a device at a trust level (needs admin:all)", TrustSchema, "certificate"),
      [`${HTTP_API_PREFIX}/invites`]: {
        post: {
          operationId: "createInvite",
          summary: "A one-time pairing invite for `coderclaw mesh join` (needs admin:all); default lifetime 15 minutes, at most a day",
          requestBody: { required: true, content: { "application/json": { schema: jsonSchema(InviteSchema) } } },
          responses: { "201": json({ type: "object", properties: { invite: { type: "string" }, level: { type: "string" }, expiresAt: { type: "string", format: "date-time" } }, required: ["invite", "level", "expiresAt"] }, "Invite"), ...errorResponses(400, 401, 403, 404) },
        },
      },
      "/healthz": {
        get: {
          operationId: "health",
          summary: "Liveness, no authentication",
          security: [],
          responses: { "200": json({ type: "object", properties: { ok: { const: true } }, required: ["ok"] }, "Alive") },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "openapi",
          summary: "This document, no authentication",
          security: [],
          responses: { "200": json({ type: "object" }, "OpenAPI 3.1 document") },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "Session token or OIDC JWT" } },
      schemas: {
        TaskSubmitRequest: jsonSchema(TaskSubmitRequestSchema),
        TaskState: jsonSchema(TaskStateSchema),
        TaskUpdateEvent: jsonSchema(TaskUpdateEventSchema),
        TaskEvent: jsonSchema(TaskEventSchema),
        AgentInfo: jsonSchema(AgentInfoSchema),
        SkillInfo: jsonSchema(SkillInfoSchema),
        RuntimeStatus: jsonSchema(RuntimeStatusSchema),
        CancelResult: jsonSchema(CancelResultSchema),
        Error: jsonSchema(ErrorBodySchema),
      },
    },
  };
  return cached;
}
