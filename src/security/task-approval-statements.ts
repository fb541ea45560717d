import { z } from "zod";
import { signStatement, type SignedStatement, type StatementSigner } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, statementIdSchema, timestampSchema } from "../../identity/statement-kinds.js";

/**
 * Body of a `task-approval-request` statement: the node that holds a task
 * (`signer`) says the task waits for an approver's decision, by which rule of
 * its policy, until when. It travels in the mesh's statement set, so any member
 * can list what waits and decide.
 */
export const taskApprovalRequestSchema = z.strictObject({
  signer: deviceIdSchema,
  meshId: meshIdSchema,
  taskId: z.uuid(),
  agentId: z.string().min(1).max(128),
  /** The device the task came from (the holder itself for its own). */
  submittedBy: deviceIdSchema,
  /** The task's description, cut to fit. */
  description: z.string().max(200),
  rule: z.string().min(1).max(300),
  askedAt: timestampSchema,
  deadline: timestampSchema,
});

/**
 * Body of a `task-approval-decision` statement: `signer` approves or denies
 * the request whose statement it names, for that task in that mesh: it cannot
 * be replayed onto another request. Only the task's holder acts on it, after
 * checking that the signer may approve there.
 */
export const taskApprovalDecisionSchema = z.strictObject({
  signer: deviceIdSchema,
  meshId: meshIdSchema,
  request: statementIdSchema,
  taskId: z.uuid(),
  approve: z.boolean(),
  reason: z.string().max(1000),
  decidedAt: timestampSchema,
});

/** Body of a `task-approval-request` statement. */
export type TaskApprovalRequestBody = z.infer<typeof taskApprovalRequestSchema>;
/** Body of a `task-approval-decision` statement. */
export type TaskApprovalDecisionBody = z.infer<typeof taskApprovalDecisionSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    "task-approval-request": TaskApprovalRequestBody;
    "task-approval-decision": TaskApprovalDecisionBody;
  }
}

registerStatementKindOnce("task-approval-request", { schema: taskApprovalRequestSchema, signer: (body) => body.signer });
registerStatementKindOnce("task-approval-decision", { schema: taskApprovalDecisionSchema, signer: (body) => body.signer });

/** Sign a request as the task's holder. Deterministic: the same request signed again has the same id. */
export function signTaskApprovalRequest(signer: StatementSigner, body: Omit<TaskApprovalRequestBody, "signer">): SignedStatement<"task-approval-request"> {
  return signStatement(signer, "task-approval-request", { ...body, signer: signer.peerId });
}

/** Sign a decision on the request `body.request` names. */
export function signTaskApprovalDecision(signer: StatementSigner, body: Omit<TaskApprovalDecisionBody, "signer" | "decidedAt">): SignedStatement<"task-approval-decision"> {
  return signStatement(signer, "task-approval-decision", { ...body, signer: signer.peerId, decidedAt: Date.now() });
}

/** The statement as a task approval request, when it is one. */
export function asTaskApprovalRequest(statement: SignedStatement): SignedStatement<"task-approval-request"> | undefined {
  return statement.kind === "task-approval-request" ? statement : undefined;
}

/** The statement as a task approval decision, when it is one. */
export function asTaskApprovalDecision(statement: SignedStatement): SignedStatement<"task-approval-decision"> | undefined {
  return statement.kind === "task-approval-decision" ? statement : undefined;
}
