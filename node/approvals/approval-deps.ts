import { decodeStatement, type SignedStatement, type StatementSigner } from "../../identity/index.js";
import type { AuditBody } from "../../src/security/index.js";
import type { SetItem } from "../mesh/statement-set.js";

/** What approvals of any kind need of the node: requests and decisions are signed statements in the mesh's set. */
export interface ApprovalStatementDeps {
  /** The mesh's statement set: decisions (and task requests) travel in it. */
  set: { add(items: readonly SetItem[]): Promise<{ refused: Array<{ reason: string }> }>; onAdded(listener: (items: readonly SetItem[]) => void): () => void; statements(): SignedStatement[] };
  /** This device: it signs the decisions made here (and its own tasks' requests). */
  signer: StatementSigner;
  meshId: () => string | undefined;
  /** Whether a device may decide here (`task:approve`, or admin), by this node's own view of its grants. */
  canApprove: (deviceId: string) => { allowed: boolean; reason?: string };
  record: (body: AuditBody) => Promise<unknown>;
  onError?: (error: Error) => void;
}

/** The statements among items just added to the set. */
export function statementsAdded(items: readonly SetItem[]): SignedStatement[] {
  const statements: SignedStatement[] = [];
  for (const item of items) {
    if (item.kind !== "statement") continue;
    try {
      statements.push(decodeStatement(item.bytes));
    } catch {
      // The set verified it before adding it: one that no longer decodes is no decision to act on.
    }
  }
  return statements;
}
