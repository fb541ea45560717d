import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { TaskApprovals, TaskApprovalView } from "../approvals/task-approvals.js";
import { approvalEvents, type ApprovalStreamWriter } from "./approval-stream.js";

/** What the routes need of the server they are added to. */
export interface TaskApprovalRouteDeps {
  approvals: Pick<TaskApprovals, "list" | "decideHere" | "watch">;
  /** Refuses (throws) an action the caller may not take. */
  check: (request: FastifyRequest, action: "task:read" | "task:approve", resource: { type: "task" }) => Promise<void>;
  /** Who the caller is, recorded as the decider. */
  subjectOf: (request: FastifyRequest) => string;
  stream: ApprovalStreamWriter<TaskApprovalView>;
}

const DecisionSchema = z.strictObject({ reason: z.string().max(1000).optional() });
const TaskIdSchema = z.uuid();

/**
 * `/task-approvals` routes: tasks that a policy rule holds for a decision,
 * anywhere in the mesh (from the requests their holders signed), and follow
 * them as they are asked and decided (`/task-approvals/events`); approve or
 * deny one this node holds. The node checks the caller's `task:approve`
 * itself (audited) and records the caller as the decider; another member's
 * tasks are decided with `coderclaw approvals` (a signed decision).
 */
export function registerTaskApprovalRoutes(api: FastifyInstance, deps: TaskApprovalRouteDeps): void {
  api.get("/task-approvals", async (request) => {
    await deps.check(request, "task:read", { type: "task" });
    return { approvals: deps.approvals.list() };
  });
  api.get("/task-approvals/events", async (request, reply) => {
    await deps.check(request, "task:read", { type: "task" });
    await deps.stream(reply, (signal) => approvalEvents(deps.approvals, (a) => a.taskId, (a) => a.deadline, signal));
  });
  for (const [verb, approve] of [["approve", true], ["deny", false]] as const) {
    api.post<{ Params: { taskId: string } }>(`/task-approvals/:taskId/${verb}`, async (request) => {
      const taskId = parseInput(TaskIdSchema, request.params.taskId, "taskId");
      const { reason } = parseInput(DecisionSchema, request.body ?? {});
      await deps.check(request, "task:approve", { type: "task" });
      await deps.approvals.decideHere(taskId, approve, deps.subjectOf(request), reason ?? "");
      return { taskId, approved: approve };
    });
  }
}
