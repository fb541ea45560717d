import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { ApprovalView, NodeApprovals } from "./node-approvals.js";

/** Administrative calls on approvals, served over the control socket. */
export const APPROVAL_METHODS = ["approval.list", "approval.decide"] as const;
export type ApprovalMethod = (typeof APPROVAL_METHODS)[number];

const schemas = {
  "approval.list": z.strictObject({}).optional(),
  "approval.decide": z.strictObject({ id: z.string().min(1).max(200), approve: z.boolean(), reason: z.string().max(1000).optional() }),
} satisfies Record<ApprovalMethod, z.ZodType>;

/** True when `method` is one of {@link APPROVAL_METHODS}. */
export function isApprovalMethod(method: string): method is ApprovalMethod {
  return (APPROVAL_METHODS as readonly string[]).includes(method);
}

/** An open request as listings show it. */
export function approvalSummary(a: ApprovalView): Record<string, unknown> {
  return { id: a.ref, workflow: a.workflowId, workflowName: a.workflowName, step: a.stepId, ...(a.agent !== undefined && { agent: a.agent }), askedAt: new Date(a.request.askedAt).toISOString(), deadline: new Date(a.request.deadline).toISOString() };
}

/** Run one approval call against `approvals`; parameters are validated here. */
export async function runApprovalAdmin(approvals: NodeApprovals, method: ApprovalMethod, raw: unknown): Promise<unknown> {
  switch (method) {
    case "approval.list":
      parseInput(schemas[method], raw);
      return (await approvals.list()).map(approvalSummary);
    case "approval.decide": {
      const { id, approve, reason } = parseInput(schemas[method], raw);
      return { statement: await approvals.decide(id, approve, reason ?? "") };
    }
  }
}
