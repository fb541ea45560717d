/**
 * The JSON wire form of the runtime contract over HTTP, shared by the server in
 * node/http (request validation, the OpenAPI document) and HTTPTransportAdapter
 * (response parsing). One set of zod schemas keeps the three from drifting.
 *
 * Dates travel as RFC 3339 strings; each schema's input side is the JSON form and
 * its output side is the contract type with `Date` values.
 */
import { z } from "zod";
import { MetadataSchema } from "../contract/metadata.js";
import { formatRequirements, parseRequirements } from "../contract/requirements.js";
import { RouteSchema } from "../contract/route.js";
import { ArtifactPatternsSchema, parseSubmitOptions, RequirementsSchema } from "../contract/submit-options.js";
import { MAX_PRIORITY, MIN_PRIORITY, TASK_STATUSES, type SubmitOptions, type TaskStatus } from "../contract/types.js";
import { InvalidInputError, type ErrorCode } from "../contract/errors.js";
import { parseInput } from "../contract/parse-input.js";
import { AGENT_ID_RE, DEFAULT_MAX_INPUT_BYTES, SESSION_ID_RE } from "../engine/submit-schema.js";

/** Version prefix of every API route. */
export const HTTP_API_PREFIX = "/v1";

/** Default cap on a submitted task's `input`, in UTF-8 bytes: the engine's. */
export const MAX_INPUT_BYTES = DEFAULT_MAX_INPUT_BYTES;

const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");
const sessionId = z.string().regex(SESSION_ID_RE, "must be 1-128 characters of A-Z a-z 0-9 . _ -");

const wireDate = z.iso.datetime({ offset: true }).transform((s) => new Date(s));

/** A task id as it may appear in a URL path. */
export const TaskIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "must be letters, digits, '.', '_', ':' or '-'");

/** Task status. */
export const TaskStatusSchema = z.enum(TASK_STATUSES as [TaskStatus, ...TaskStatus[]]);

/**
 * Body of `POST /v1/tasks`, mirroring the engine's submit rules (which check again)
 * so the OpenAPI document states them. Unknown keys are refused so typos surface as 400s.
 */
export const TaskSubmitRequestSchema = z.strictObject({
  agentId: z.string().regex(AGENT_ID_RE, "must be a lowercase id like 'echo' or 'code-reviewer'").optional(),
  description: z.string().min(1).max(16 * 1024).refine((s) => s.trim().length > 0, "must not be empty").refine((s) => utf8Bytes(s) <= 16 * 1024, "must be at most 16384 bytes"),
  // The byte cap is the engine's, configurable per node; the body limit bounds it here.
  input: z.string(),
  model: z.string().min(1).max(256).optional(),
  thinking: z.string().min(1).max(64).optional(),
  sessionId: sessionId.optional(),
  parentTaskId: TaskIdSchema.optional(),
  metadata: MetadataSchema.optional(),
});

/**
 * Query of `POST /v1/tasks`: where to run the task (`SubmitOptions`), apart from
 * the task itself in the body, as the control socket keeps it apart from the request.
 */
export const TaskSubmitQuerySchema = z.strictObject({
  route: RouteSchema.describe("auto (the default), local (this node), or the peer id of the mesh member to run the task").optional(),
  priority: z.coerce.number().int().describe(`among tasks waiting on the node, higher first (${MIN_PRIORITY}..${MAX_PRIORITY}, default 0)`).optional(),
  requires: z.string().max(4096).describe("labels and resources the node that runs it must have: gpu,cpu>=4").optional(),
  deadline: z.string().max(64).describe("fail the task if it has not started by then: an ISO 8601 date-time or epoch milliseconds").optional(),
  waitForPeer: z.enum(["true", "false"]).describe("false refuses the task at once when no member can start it now (default true: it waits)").optional(),
  tree: z.string().regex(/^[0-9a-f]{64}$/, "must be a tree id (64 lowercase hex)").describe("code the task carries: a tree this session uploaded (POST /v1/blobs, PUT /v1/trees/<id>)").optional(),
  artifacts: z
    .union([z.string(), z.array(z.string())])
    .transform((a) => (typeof a === "string" ? [a] : a))
    .describe("with tree, repeatable: files to bring back with the result, as globs inside the workspace")
    .optional(),
  commits: z.enum(["true", "false"]).describe("with tree: make the workspace a git repository and bring back the agent's commits").optional(),
});

/** Code a task submitted over HTTP carries: a tree its caller uploaded, and what comes back from it. */
export interface UploadedCode {
  tree: string;
  artifacts?: string[];
  commits?: boolean;
}

/** The code a `POST /v1/tasks` query names, checked as `SubmitOptions` checks `artifacts` and `commits`; undefined when it names none. */
export function uploadedCodeOf(query: Pick<z.infer<typeof TaskSubmitQuerySchema>, "tree" | "artifacts" | "commits">): UploadedCode | undefined {
  const { tree, artifacts, commits } = query;
  if (tree === undefined) {
    if (artifacts !== undefined) throw new InvalidInputError("needs tree: artifacts come from the workspace of a task that carries code", "artifacts");
    if (commits === "true") throw new InvalidInputError("needs tree: commits are made in the workspace of a task that carries code", "commits");
    return undefined;
  }
  const patterns = artifacts === undefined ? undefined : parseInput(ArtifactPatternsSchema, artifacts, "artifacts");
  return { tree, ...(patterns !== undefined && patterns.length > 0 && { artifacts: patterns }), ...(commits === "true" && { commits: true }) };
}

/** The submit options a `POST /v1/tasks` query asks for, checked as every edge checks them. */
export function submitOptionsFromQuery(query: z.infer<typeof TaskSubmitQuerySchema>): SubmitOptions {
  return parseSubmitOptions({
    ...(query.route !== undefined && { route: query.route }),
    ...(query.priority !== undefined && { priority: query.priority }),
    ...(query.requires !== undefined && { requires: parseRequirements(query.requires) }),
    ...(query.deadline !== undefined && { deadline: /^\d+$/.test(query.deadline) ? Number(query.deadline) : query.deadline }),
    ...(query.waitForPeer !== undefined && { waitForPeer: query.waitForPeer === "true" }),
  });
}

/**
 * The query of `POST /v1/tasks` that carries `options` (what {@link submitOptionsFromQuery} reads back) and the
 * code uploaded for the task (what {@link uploadedCodeOf} reads back); `options.repo` is the caller's to upload.
 */
export function submitOptionsToQuery(options: SubmitOptions | undefined, code?: UploadedCode): string {
  const q = new URLSearchParams();
  if (code !== undefined) {
    q.set("tree", code.tree);
    for (const pattern of code.artifacts ?? []) q.append("artifacts", pattern);
    if (code.commits === true) q.set("commits", "true");
  }
  if (options?.route !== undefined) q.set("route", options.route);
  if (options?.priority !== undefined) q.set("priority", String(options.priority));
  if (options?.requires !== undefined) q.set("requires", formatRequirements(options.requires));
  if (options?.deadline !== undefined) q.set("deadline", String(options.deadline.getTime()));
  if (options?.waitForPeer !== undefined) q.set("waitForPeer", String(options.waitForPeer));
  const text = q.toString();
  return text === "" ? "" : `?${text}`;
}

/** Query of `GET /v1/tasks`. */
export const TaskListQuerySchema = z.strictObject({
  status: TaskStatusSchema.optional(),
  sessionId: sessionId.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

/**
 * Query of `GET /v1/tasks`: the listing's filter, a page position (`before`, a
 * page's `next`) and the filters the indexes cannot answer, checked on each task.
 */
/** Query of `GET /v1/tasks/:id/patch` and `.../artifacts`: `grant`, a token the task's submitter made for this node. */
export const TaskChangesQuerySchema = z.strictObject({ grant: z.string().max(4096).optional() });

export const TaskPageQuerySchema = TaskListQuerySchema.extend({
  before: z.string().max(200).regex(/^\d{15}:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "must be a page's `next`: <createdAt ms, 15 digits>:<task id>").optional(),
  agentId: z.string().min(1).max(128).optional(),
  executor: z.string().min(1).max(128).optional(),
});

/** Resume position of `GET /v1/tasks/:id/events`, from `?after=` or `Last-Event-ID`. */
export const SeqSchema = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Query of `GET /v1/audit`; passed to the audit dependency as is. */
export const AuditQuerySchema = z.strictObject({
  userId: z.string().min(1).max(256).optional(),
  action: z.string().min(1).max(128).optional(),
  result: z.enum(["allowed", "denied", "error"]).optional(),
  startDate: wireDate.optional(),
  endDate: wireDate.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

/** A task's state on the wire. */
export const TaskStateSchema = z.object({
  id: z.string(),
  status: TaskStatusSchema,
  agentId: z.string().optional(),
  description: z.string(),
  sessionId: z.string().optional(),
  parentTaskId: z.string().optional(),
  createdAt: wireDate,
  startedAt: wireDate.optional(),
  completedAt: wireDate.optional(),
  output: z.string().optional(),
  error: z.string().optional(),
  progress: z.number().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  executorId: z.string().optional(),
  submittedBy: z.string().optional(),
  placement: z
    .object({
      reason: z.string().optional(),
      runsOn: z.string().optional(),
      attemptId: z.string().optional(),
      attempt: z.number().int().optional(),
      attemptSeq: z.number().int().optional(),
      priority: z.number().int().optional(),
      requires: RequirementsSchema.optional(),
      deadline: wireDate.optional(),
      route: z.string().optional(),
    })
    .optional(),
});

/** One update of a task's event stream, the `data:` of an SSE `update` event. */
export const TaskUpdateEventSchema = z.object({
  taskId: z.string(),
  status: TaskStatusSchema,
  timestamp: wireDate,
  message: z.string().optional(),
  progress: z.number().optional(),
  data: z.unknown().optional(),
  seq: z.number().int().min(1).optional(),
});

/** One entry of a task's full history (`GET /v1/tasks/:id/history`). */
export const TaskEventSchema = z.object({
  seq: z.number().int().min(1),
  type: z.enum(["created", "status_changed", "progress_updated", "output_added", "error_set"]),
  timestamp: wireDate,
  status: TaskStatusSchema,
  message: z.string().optional(),
  progress: z.number().optional(),
  data: z.unknown().optional(),
});

/** An agent on the wire. */
export const AgentInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  capabilities: z.array(z.string()),
  model: z.string().optional(),
  thinking: z.string().optional(),
  available: z.boolean().optional(),
  unavailableReason: z.string().optional(),
});

/** A skill on the wire. */
export const SkillInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  version: z.string(),
  enabled: z.boolean(),
  disabledReason: z.string().optional(),
  dangerous: z.boolean().optional(),
});

/** `GET /v1/status`: the adapter's status; the caller's runtime adds its own mode. */
export const RuntimeStatusSchema = z.object({
  version: z.string(),
  uptime: z.number(),
  activeTasks: z.number().int(),
  totalTasks: z.number().int(),
  healthy: z.boolean(),
});

/** `POST /v1/tasks/:id/cancel`. */
export const CancelResultSchema = z.object({ cancelled: z.boolean() });

/** Every non-2xx answer, and the `data:` of an SSE `error` event. */
export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    field: z.string().optional(),
  }),
});

/** JSON form of an error answer. */
export type ErrorBody = z.input<typeof ErrorBodySchema>;

/** SSE event names the server sends on a task stream. */
export const SSE_EVENTS = {
  update: "update",
  /** The task reached a terminal status and every update was sent: do not reconnect. */
  end: "end",
  error: "error",
} as const;

/**
 * HTTP status for each error code. The client never maps back from the status:
 * it reads `error.code` from the body, so two codes may share a status.
 */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  INVALID_INPUT: 400,
  PROTOCOL: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  INVALID_TRANSITION: 409,
  CANCELLED: 409,
  AGENT_UNAVAILABLE: 422,
  UNKNOWN_AGENT: 422,
  STORAGE_CORRUPT: 500,
  CONFIG: 500,
  SHUTTING_DOWN: 503,
  BUSY: 503,
  QUOTA: 507,
  STORAGE_LOCKED: 503,
  UNAVAILABLE: 503,
  EXECUTION_FAILED: 502,
  TIMEOUT: 504,
};

const ERROR_CODES = new Set(Object.keys(HTTP_STATUS_BY_CODE));

/** True when `code` is one of the contract's error codes. */
export function isErrorCode(code: string): code is ErrorCode {
  return ERROR_CODES.has(code);
}
