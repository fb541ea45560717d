import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { ApprovalDecision, OpenApproval } from "../../src/workflows/index.js";

/** What the HTTP API needs of a node's approvals: the requests this node owns. */
export interface HttpApprovals {
  list(): OpenApproval[];
  /** Decide an open request of this node; refused (NOT_FOUND) for one it does not hold open. */
  decide(requestId: string, decision: ApprovalDecision): Promise<OpenApproval>;
  /** Call `listener` whenever a request may have been asked or decided; returns the function that stops it. */
  watch(listener: () => void): () => void;
}

/** An approval change, as the event stream sends it. */
export interface ApprovalStreamEvent {
  seq: number;
  type: "open" | "asked" | "decided";
  approval: OpenApproval;
}

/** What the routes need of the server they are added to. */
export interface ApprovalRouteDeps {
  approvals: HttpApprovals;
  /** Refuses (throws) an action the caller may not take. */
  check: (request: FastifyRequest, action: "task:read" | "task:approve", resource: { type: "task" }) => Promise<void>;
  /** Who the caller is, recorded as the decider. */
  subjectOf: (request: FastifyRequest) => string;
  stream: (reply: FastifyReply, events: (signal: AbortSignal) => AsyncIterable<ApprovalStreamEvent>) => Promise<void>;
}

const DecisionSchema = z.strictObject({ reason: z.string().max(1000).optional() });
const RequestIdSchema = z.uuid();

/**
 * `/approvals` routes: list the requests this node's workflows wait on, approve
 * or deny one, follow them as they are asked and decided. This node owns the
 * requests it serves, so it checks the caller's `task:approve` itself (the one
 * authorisation decision, audited) and records the caller as the decider.
 */
export function registerApprovalRoutes(api: FastifyInstance, deps: ApprovalRouteDeps): void {
  const { approvals, check } = deps;

  api.get("/approvals", async (request) => {
    await check(request, "task:read", { type: "task" });
    return { approvals: approvals.list() };
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
    await deps.stream(reply, (signal) => approvalEvents(approvals, signal));
  });
}

/** The open requests now (`open`), then each request as it is asked and decided, until `signal` aborts. */
async function* approvalEvents(approvals: HttpApprovals, signal: AbortSignal): AsyncGenerator<ApprovalStreamEvent> {
  let seq = 1;
  let wake: (() => void) | undefined;
  let changed = false;
  const stop = approvals.watch(() => {
    changed = true;
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let held = new Map(approvals.list().map((a) => [a.request.id, a]));
    for (const a of held.values()) yield { seq: seq++, type: "open", approval: a };
    while (!signal.aborted) {
      if (!changed) await new Promise<void>((resolve) => (wake = resolve));
      changed = false;
      const now = new Map(approvals.list().map((a) => [a.request.id, a]));
      for (const [id, a] of now) if (!held.has(id)) yield { seq: seq++, type: "asked", approval: a };
      for (const [id, a] of held) if (!now.has(id)) yield { seq: seq++, type: "decided", approval: a };
      held = now;
    }
  } finally {
    stop();
    signal.removeEventListener("abort", onAbort);
  }
}
