import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { ApprovalDecision, OpenApproval } from "../../src/workflows/index.js";
import { approvalEvents, requestsSeenBy, type ApprovalStreamWriter, type RequestViewer, type WatchedRequests } from "./approval-stream.js";

/** What the HTTP API needs of a node's approvals: the requests this node owns. */
export interface HttpApprovals extends WatchedRequests<OpenApproval> {
  /** Decide an open request of this node; refused (NOT_FOUND) for one it does not hold open. */
  decide(requestId: string, decision: ApprovalDecision): Promise<OpenApproval>;
}

/** What the routes need of the server they are added to. */
export interface ApprovalRouteDeps {
  approvals: HttpApprovals;
  /** Refuses (throws) an action the caller may not take. */
  check: (request: FastifyRequest, action: "task:read" | "task:approve", resource: { type: "task" }) => Promise<void>;
  /** Who the caller is, recorded as the decider. */
  subjectOf: (request: FastifyRequest) => string;
  /** How the caller sees requests: those of workflows it may read, or all when it may decide them. */
  viewerOf: (request: FastifyRequest) => RequestViewer<OpenApproval>;
  stream: ApprovalStreamWriter<OpenApproval>;
}

const DecisionSchema = z.strictObject({ reason: z.string().max(1000).optional() });
const RequestIdSchema = z.uuid();

/**
 * `/approvals` routes: list the requests this node's workflows wait on, approve
 * or deny one, follow them as they are asked and decided (`/approvals/events`). This node owns the
 * requests it serves, so it checks the caller's `task:approve` itself (the one
 * authorisation decision, audited) and records the caller as the decider. A
 * caller lists and follows the requests of workflows it may read, and all of
 * them when it may decide them.
 */
export function registerApprovalRoutes(api: FastifyInstance, deps: ApprovalRouteDeps): void {
  const { approvals, check } = deps;
  const keyOf = (a: OpenApproval): string => a.request.id;
  const seenBy = (request: FastifyRequest): WatchedRequests<OpenApproval> => requestsSeenBy(approvals, keyOf, deps.viewerOf(request));

  api.get("/approvals", async (request) => {
    await check(request, "task:read", { type: "task" });
    return { approvals: await seenBy(request).list() };
  });

  for (const [verb, approved] of [["approve", true], ["deny", false]] as const) {
    api.post<{ Params: { id: string } }>(`/approvals/:id/${verb}`, async (request) => {
      const requestId = parseInput(RequestIdSchema, request.params.id, "id");
      const { reason } = parseInput(DecisionSchema, request.body ?? {});
      await check(request, "task:approve", { type: "task" });
      return approvals.decide(requestId, { approved, by: deps.subjectOf(request), reason: reason ?? "", at: Date.now() });
    });
  }

  api.get("/approvals/events", async (request, reply) => {
    await check(request, "task:read", { type: "task" });
    const seen = seenBy(request);
    await deps.stream(reply, (signal) => approvalEvents(seen, keyOf, (a) => a.request.deadline, signal));
  });
}
