import type { SignedStatement } from "../../identity/index.js";
import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import type { AuditBody } from "../../src/security/index.js";
import { asApprovalDecision, signApprovalDecision } from "../../src/workflows/approval-statement.js";
import type { ApprovalEvent, OpenApproval, WorkflowCoordinator } from "../../src/workflows/index.js";
import { statementsAdded, type ApprovalStatementDeps } from "../approvals/approval-deps.js";

/** What a node's approvals need of the node. */
export interface NodeApprovalsDeps extends ApprovalStatementDeps {
  /** The node's workflows: the requests this node owns. */
  workflows: Pick<WorkflowCoordinator, "approvals" | "decide" | "get" | "list">;
}

/** An approval request and what it is for, as listed and streamed. */
export interface ApprovalView extends OpenApproval {
  /** `<workflow>/<step>/<request>`: what `approve` and `deny` take, on any member. */
  ref: string;
}

/** A request asked or decided, for live views (SSE). */
export type ApprovalUpdate = ApprovalView & { type: ApprovalEvent["type"] };

/** Approvals as a node sees them: the requests it owns, and decisions signed here for any member's requests. */
export interface NodeApprovals {
  /** Open requests of the workflows this node holds (its own, and those replicated from other members), oldest first. */
  list(): Promise<ApprovalView[]>;
  /**
   * Sign a decision on the request `ref` names and add it to the mesh's
   * statement set, from where it reaches the request's owner (this node
   * included), which checks the signer may approve before acting. Resolves with
   * the statement's id.
   */
  decide(ref: string, approve: boolean, reason?: string): Promise<string>;
  /** Told of every request this node asks and decides. */
  subscribe(listener: (update: ApprovalUpdate) => void): () => void;
  /** The coordinator's approval events go here. */
  onEvent(event: ApprovalEvent): void;
  /** Apply decisions already held for requests now open (after a restart: one may have arrived just before the crash). */
  catchUp(): Promise<void>;
  close(): void;
}

/** Parse `<workflow>/<step>/<request>`; `field` names it in errors. */
export function parseApprovalRef(ref: string, field = "id"): { workflowId: string; stepId: string; requestId: string } {
  const parts = ref.length <= 200 ? ref.split("/") : [];
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) throw new InvalidInputError(`"${ref.slice(0, 80)}" is not an approval id (<workflow>/<step>/<request>, as \`approvals list\` prints it)`, field);
  return { workflowId: parts[0]!, stepId: parts[1]!, requestId: parts[2]! };
}

const viewOf = (a: OpenApproval): ApprovalView => ({ ...a, ref: `${a.workflowId}/${a.stepId}/${a.request.id}` });

/**
 * A node's approvals. A decision is a signed statement naming the request
 * whole; the owner acts on one only when it names a request it holds open,
 * with the same workflow and step, in this mesh, signed by a device it finds
 * may approve. Everything else is refused and audited, so a decision cannot be
 * replayed onto another request, nor lent authority by the node that relayed it.
 */
export function createNodeApprovals(deps: NodeApprovalsDeps): NodeApprovals {
  const listeners = new Set<(u: ApprovalUpdate) => void>();
  let serial: Promise<unknown> = Promise.resolve();

  const refuse = (st: SignedStatement<"approval-decision">, reason: string): Promise<unknown> =>
    deps.record({ action: "approval.decide", userId: st.body.signer, deviceId: st.body.signer, resource: `${st.body.workflowId}/${st.body.stepId}/${st.body.requestId}`, result: "denied", reason: `${reason} (statement ${st.id.slice(0, 16)})` });

  /** Act on one decision if it is for a request of this node; `quiet` skips auditing decisions that are no longer news. */
  const handle = async (st: SignedStatement<"approval-decision">, quiet: boolean): Promise<void> => {
    const { body } = st;
    const open = deps.workflows.approvals().find((a) => a.request.id === body.requestId);
    if (open === undefined) {
      if (quiet) return;
      const record = await deps.workflows.get(body.workflowId).catch(() => undefined);
      const step = record?.steps[body.stepId];
      if (step?.approval?.id === body.requestId && step.approval.decision !== undefined) await refuse(st, "the request was decided already");
      return;
    }
    if (open.workflowId !== body.workflowId || open.stepId !== body.stepId) return void (await refuse(st, `names workflow ${body.workflowId} step ${body.stepId}, but the request is for workflow ${open.workflowId} step ${open.stepId}`));
    if (body.meshId !== deps.meshId()) return void (await refuse(st, `signed for mesh ${body.meshId}, not this one`));
    if (body.decidedAt > open.request.deadline) return void (await refuse(st, `decided at ${new Date(body.decidedAt).toISOString()}, after the request's deadline ${new Date(open.request.deadline).toISOString()}`));
    const may = deps.canApprove(body.signer);
    if (!may.allowed) return void (await refuse(st, `${body.signer} may not approve: ${may.reason ?? "task:approve not granted"}`));
    await deps.workflows.decide(body.requestId, { approved: body.approve, by: body.signer, reason: body.reason, at: body.decidedAt, statementId: st.id });
  };

  const take = (statements: Iterable<SignedStatement>, quiet: boolean): Promise<void> => {
    const run = serial.then(async () => {
      for (const s of statements) {
        const decision = asApprovalDecision(s);
        if (decision !== undefined) await handle(decision, quiet).catch((err: Error) => deps.onError?.(err));
      }
    });
    serial = run.catch(() => undefined);
    return run;
  };

  const unsubscribe = deps.set.onAdded((items) => void take(statementsAdded(items), false));

  return {
    async list() {
      const own = deps.workflows.approvals();
      const held = new Set(own.map((a) => a.request.id));
      const others: OpenApproval[] = [];
      // Requests of workflows other members coordinate, as their replicated documents show them.
      for (const record of await deps.workflows.list()) {
        if (record.status !== "running" || record.coordinator === undefined || record.coordinator === deps.signer.peerId) continue;
        for (const step of record.definition.steps) {
          const request = record.steps[step.id]?.approval;
          if (request === undefined || request.decision !== undefined || held.has(request.id)) continue;
          others.push({ workflowId: record.id, workflowName: record.definition.name, stepId: step.id, ...(step.agent !== undefined && { agent: step.agent }), request });
        }
      }
      return [...own, ...others].sort((a, b) => a.request.askedAt - b.request.askedAt).map(viewOf);
    },
    async decide(ref, approve, reason = "") {
      const { workflowId, stepId, requestId } = parseApprovalRef(ref);
      const meshId = deps.meshId();
      if (meshId === undefined) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: a decision is a statement of the mesh");
      if (reason.length > 1000) throw new InvalidInputError("over 1000 characters", "reason");
      let statement: SignedStatement<"approval-decision">;
      try {
        statement = signApprovalDecision(deps.signer, { meshId, requestId, workflowId, stepId, approve, reason });
      } catch (err) {
        throw new InvalidInputError(`"${ref.slice(0, 80)}" is not an approval id: ${(err as Error).message}`, "id");
      }
      const { refused } = await deps.set.add([{ id: statement.id, kind: "statement", bytes: statement.bytes }]);
      if (refused.length > 0) throw new CoderClawError("PERMISSION_DENIED", `the decision was not taken into the mesh's statements: ${refused[0]!.reason}`);
      await deps.record({ action: "approval.sign", userId: deps.signer.peerId, deviceId: deps.signer.peerId, resource: ref, result: "allowed", reason: `${approve ? "approve" : "deny"}: ${reason}` });
      // A decision for a request of this node has been acted on (or refused) by the time this resolves.
      await serial;
      return statement.id;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onEvent(event) {
      const { type, ...approval } = event;
      const view = viewOf(approval);
      const decision = event.request.decision;
      const body: AuditBody =
        type === "asked"
          ? { action: "approval.request", userId: deps.signer.peerId, deviceId: deps.signer.peerId, resource: view.ref, result: "allowed", reason: `workflow ${event.workflowName}, step ${event.stepId}, decide by ${new Date(event.request.deadline).toISOString()}` }
          : { action: "approval.decide", userId: decision?.by ?? deps.signer.peerId, deviceId: decision?.by ?? deps.signer.peerId, resource: view.ref, result: decision?.approved === true ? "allowed" : "denied", reason: `${decision?.approved === true ? "approved" : "denied"}: ${decision?.reason ?? ""}${decision?.statementId === undefined ? "" : ` (statement ${decision.statementId.slice(0, 16)})`}` };
      deps.record(body).catch((err: Error) => deps.onError?.(err));
      for (const l of listeners) l({ type, ...view });
    },
    catchUp: () => take(deps.set.statements(), true),
    close() {
      unsubscribe();
      listeners.clear();
    },
  };
}
