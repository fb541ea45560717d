import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { CoderClawError, InvalidInputError, NotFoundError } from "../../src/contract/errors.js";
import { ConfigError } from "../../src/config/yaml-source.js";
import { WorkflowInputSchema } from "../workflows/workflow-admin.js";
import type { HttpApprovals } from "./approval-routes.js";
import { parseInput } from "../../src/contract/parse-input.js";
import { MAX_WORKFLOW_FILE_BYTES, parseWorkflowFile, readWorkflowTemplate, workflowTemplates, type WorkflowDefinition, type WorkflowRecord, type WorkflowStarter } from "../../src/workflows/index.js";

/** What the HTTP API needs of a node's workflows. */
export interface HttpWorkflows {
  /** Start `definition` for `startedBy` (named in the audit log, kept in the record), once the caller was checked for every step. */
  start(definition: WorkflowDefinition, input: string | Record<string, string> | undefined, startedBy: WorkflowStarter): Promise<WorkflowRecord>;
  list(): Promise<WorkflowRecord[]>;
  get(id: string): Promise<WorkflowRecord | undefined>;
  cancel(id: string): Promise<boolean>;
  /** Call `listener` each time workflow `id` changes; returns the function that stops it. */
  watch(id: string, listener: () => void): () => void;
  /** The approval requests of these workflows; `/v1/approvals` answers 404 when absent. */
  approvals?: HttpApprovals;
}

/** What the routes need of the server they are added to. */
export interface WorkflowRouteDeps {
  workflows: HttpWorkflows;
  /** Refuses (throws) an action the caller may not take. */
  check: (request: FastifyRequest, action: "task:submit" | "task:read" | "task:cancel" | "agent:invoke", resource: { type: "task"; agentId?: string } | { type: "agent"; id: string } | WorkflowResource) => Promise<void>;
  /** Whether the caller may read a workflow, unaudited: filters a listing, as tasks' are. */
  mayRead: (request: FastifyRequest, workflow: WorkflowResource) => Promise<boolean>;
  /** Who the caller is, and its session: the workflow's starter, named in the audit log and kept in its record. */
  starterOf: (request: FastifyRequest) => WorkflowStarter;
  /** Serve `records` as a server-sent event stream on `reply`. */
  stream: (reply: FastifyReply, records: (signal: AbortSignal) => AsyncIterable<{ seq: number; workflow: WorkflowRecord }>) => Promise<void>;
}

/** A workflow to start: one of the node's templates by name, or a workflow file's text. */
export const WorkflowStartSchema = z.union([
  z.strictObject({ template: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, "must be a template name"), input: WorkflowInputSchema.optional() }),
  z.strictObject({ workflow: z.string().min(1).max(MAX_WORKFLOW_FILE_BYTES), input: WorkflowInputSchema.optional() }),
]);
const IdSchema = z.uuid();

/**
 * A workflow as authorisation sees it: `sessionId` is the session that started
 * it (absent when its coordinator's owner did), which may read and cancel it
 * as a task's session may the task; any other takes `admin:all`.
 */
export interface WorkflowResource {
  type: "workflow";
  id: string;
  sessionId?: string;
}

/** The resource of `record` for {@link WorkflowRouteDeps.check}. */
export function workflowResource(record: WorkflowRecord): WorkflowResource {
  const sessionId = record.startedBy?.sessionId;
  return { type: "workflow", id: record.id, ...(sessionId !== undefined && { sessionId }) };
}

/** `/workflows` routes: start, list, read, cancel, and follow a workflow's progress. */
export function registerWorkflowRoutes(api: FastifyInstance, deps: WorkflowRouteDeps): void {
  const { workflows, check } = deps;
  const readable = async (request: FastifyRequest, raw: unknown): Promise<WorkflowRecord> => {
    await check(request, "task:read", { type: "task" });
    const id = parseInput(IdSchema, raw, "id");
    const record = await workflows.get(id);
    if (record === undefined) throw new NotFoundError("workflow", id);
    await check(request, "task:read", workflowResource(record));
    return record;
  };

  api.post("/workflows", async (request, reply) => {
    // Refused before the file is read: parsing a large, deeply nested file is seconds of the node's CPU.
    await check(request, "task:submit", { type: "task" });
    const body = parseInput(WorkflowStartSchema, request.body);
    let definition: WorkflowDefinition;
    if ("template" in body) {
      if (!workflowTemplates().includes(body.template)) throw new CoderClawError("INVALID_INPUT", `no template ${body.template}; templates: ${workflowTemplates().join(", ")}`, { field: "template" });
      const source = readWorkflowTemplate(body.template);
      definition = parseWorkflowFile(source.text, source.file);
    } else {
      definition = parsedBody(body.workflow);
    }
    // Every step is the caller's submission: refused whole, naming the step, before anything runs.
    for (const step of definition.steps) {
      const agentId = step.agent;
      if (agentId === undefined) continue;
      // The submit of a step's task names its agent, so its skills are decided too, as for POST /v1/tasks:
      // the coordinator then submits as this node, whose own rights may be wider than the caller's.
      await check(request, "task:submit", { type: "task", agentId })
        .then(() => check(request, "agent:invoke", { type: "agent", id: agentId }))
        .catch((error: Error) => {
          throw new CoderClawError("PERMISSION_DENIED", `step ${step.id}: ${error.message}`, { field: `steps.${step.id}.agent` });
        });
    }
    const record = await workflows.start(definition, body.input, deps.starterOf(request));
    return reply.code(201).header("location", `/v1/workflows/${record.id}`).send(record);
  });

  api.get("/workflows", async (request) => {
    await check(request, "task:read", { type: "task" });
    const visible: WorkflowRecord[] = [];
    for (const record of await workflows.list()) {
      if (visible.length === 1000) break;
      if (await deps.mayRead(request, workflowResource(record))) visible.push(record);
    }
    return { workflows: visible };
  });

  api.get<{ Params: { id: string } }>("/workflows/:id", async (request) => readable(request, request.params.id));

  api.post<{ Params: { id: string } }>("/workflows/:id/cancel", async (request) => {
    // The right to cancel first: a caller without it is refused (and audited) as a cancel, whichever workflow it named.
    await check(request, "task:cancel", { type: "task" });
    const record = await readable(request, request.params.id);
    return { cancelled: await workflows.cancel(record.id) };
  });

  api.get<{ Params: { id: string } }>("/workflows/:id/events", async (request, reply) => {
    const first = await readable(request, request.params.id);
    await deps.stream(reply, (signal) => recordsOf(workflows, first, signal));
  });
}

/** A workflow file sent as the request's `workflow`: a mistake in it is the caller's, answered 400 naming line and key. */
function parsedBody(text: string): WorkflowDefinition {
  try {
    return parseWorkflowFile(text, "workflow");
  } catch (error) {
    if (error instanceof ConfigError) throw new InvalidInputError(error.message, "workflow");
    throw error;
  }
}

/** The workflow's record now and after each change, until it ends or `signal` aborts. */
async function* recordsOf(workflows: HttpWorkflows, first: WorkflowRecord, signal: AbortSignal): AsyncGenerator<{ seq: number; workflow: WorkflowRecord }> {
  let seq = 1;
  let wake: (() => void) | undefined;
  let changed = false;
  const stop = workflows.watch(first.id, () => {
    changed = true;
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let record: WorkflowRecord | undefined = first;
    while (record !== undefined && !signal.aborted) {
      yield { seq: seq++, workflow: record };
      if (record.status !== "running") return;
      if (!changed) await new Promise<void>((resolve) => (wake = resolve));
      changed = false;
      record = await workflows.get(first.id);
    }
  } finally {
    stop();
    signal.removeEventListener("abort", onAbort);
  }
}
