import { z } from "zod";
import { signStatement, type SignedStatement, type StatementSigner } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, timestampSchema } from "../../identity/statement-kinds.js";

/**
 * Body of an `approval-decision` statement: `signer` approves or denies one
 * approval request, naming it whole (request, workflow, step), so the node that
 * owns the request can tell it is meant for exactly that request. It travels
 * in the mesh's statement set; only the owner acts on it, after checking the
 * signer may approve.
 */
export const approvalDecisionSchema = z.strictObject({
  signer: deviceIdSchema,
  meshId: meshIdSchema,
  requestId: z.uuid(),
  workflowId: z.uuid(),
  stepId: z.string().min(1).max(64),
  approve: z.boolean(),
  reason: z.string().max(1000),
  decidedAt: timestampSchema,
});

/** Body of an `approval-decision` statement. */
export type ApprovalDecisionBody = z.infer<typeof approvalDecisionSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    "approval-decision": ApprovalDecisionBody;
  }
}

registerStatementKindOnce("approval-decision", { schema: approvalDecisionSchema, signer: (body) => body.signer });

/** Sign a decision as `signer`. */
export function signApprovalDecision(signer: StatementSigner, decision: Omit<ApprovalDecisionBody, "signer" | "decidedAt"> & { decidedAt?: number }): SignedStatement<"approval-decision"> {
  return signStatement(signer, "approval-decision", { ...decision, signer: signer.peerId, decidedAt: decision.decidedAt ?? Date.now() });
}

/** The statement as an approval decision, when it is one. */
export function asApprovalDecision(statement: SignedStatement): SignedStatement<"approval-decision"> | undefined {
  return statement.kind === "approval-decision" ? (statement) : undefined;
}
