import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { TaskApprovals, TaskApprovalView } from "../approvals/task-approvals.js";
import { approvalEvents, requestsSeenBy, type ApprovalStreamWriter, type RequestViewer, type WatchedRequests } from "./approval-stream.js";

/** What the routes need of the server they are added to. */
export interface TaskApprovalRouteDeps {
  approvals: Pick<TaskApprovals, "list" | "decideHere" | "watch">;
  /** Refuses (throws) an action the caller may not take. */
  check: (request: FastifyRequest, action: "task:read" | "task:approve", resource: { type: "task" }) => Promise<void>;
  /** Who the caller is, recorded as the decider. */
  subjectOf: (request: FastifyRequest) => string;
  /** How the caller sees requests: those of tasks it may read, or all when it may decide them. */
  viewerOf: (request: FastifyRequest) => RequestViewer<TaskApprovalView>;
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
 * tasks are decided with `coderclaw approvals` (a signed decision). A caller
 * lists and follows the requests of tasks it may read, and all of them when
 * it may decide them.
 */
export function registerTaskApprovalRoutes(api: FastifyInstance, deps: TaskApprovalRouteDeps): void {
  const keyOf = (a: TaskApprovalView): string => a.taskId;
  const seenBy = (request: FastifyRequest): WatchedRequests<TaskApprovalView> => requestsSeenBy(deps.approvals, keyOf, deps.viewerOf(request));
  api.get("/task-approvals", async (request) => {
    await deps.check(request, "task:read", { type: "task" });
    return { approvals: await seenBy(request).list() };
  });
  api.get("/task-approvals/events", async (request, reply) => {
    await deps.check(request, "task:read", { type: "task" });
    const seen = seenBy(request);
    await deps.stream(reply, (signal) => approvalEvents(seen, keyOf, (a) => a.deadline, signal));
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
