import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { ApprovalView, NodeApprovals } from "./node-approvals.js";
import { TASK_APPROVAL_PREFIX, type TaskApprovals, type TaskApprovalView } from "../approvals/task-approvals.js";
import { assertTaskId } from "../../src/engine/submit-schema.js";

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

/** A task's request as listings show it. */
export function taskApprovalSummary(a: TaskApprovalView): Record<string, unknown> {
  return { id: a.ref, task: a.taskId, description: a.description, agent: a.agentId, rule: a.rule, holder: a.signer, submittedBy: a.submittedBy, askedAt: new Date(a.askedAt).toISOString(), deadline: new Date(a.deadline).toISOString() };
}

/**
 * Run one approval call; parameters are validated here. Workflow steps' and
 * tasks' requests are listed together, oldest first; an id `task/<task id>`
 * decides a task's, any other a workflow step's.
 */
export async function runApprovalAdmin(approvals: NodeApprovals, tasks: TaskApprovals, method: ApprovalMethod, raw: unknown): Promise<unknown> {
  switch (method) {
    case "approval.list": {
      parseInput(schemas[method], raw);
      const rows = [...(await approvals.list()).map(approvalSummary), ...tasks.list().map(taskApprovalSummary)];
      return rows.sort((a, b) => String(a.askedAt).localeCompare(String(b.askedAt)));
    }
    case "approval.decide": {
      const { id, approve, reason } = parseInput(schemas[method], raw);
      if (id.startsWith(TASK_APPROVAL_PREFIX)) {
        const taskId = id.slice(TASK_APPROVAL_PREFIX.length);
        assertTaskId(taskId);
        return { statement: await tasks.decide(taskId, approve, reason ?? "") };
      }
      return { statement: await approvals.decide(id, approve, reason ?? "") };
    }
  }
}
