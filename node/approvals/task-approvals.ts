import { isDeviceId, type SignedStatement } from "../../identity/index.js";
import { CoderClawError, InvalidInputError, NotFoundError } from "../../src/contract/errors.js";
import type { ApprovalVerdict, OpenGate } from "../../src/engine/approval-gate.js";
import type { TaskEngine } from "../../src/engine/task-engine.js";
import { isTaskIdOf } from "../../src/engine/task-id.js";
import type { AuditBody } from "../../src/security/index.js";
import {
  asTaskApprovalDecision,
  asTaskApprovalRequest,
  signTaskApprovalDecision,
  signTaskApprovalRequest,
  type TaskApprovalRequestBody,
} from "../../src/security/task-approval-statements.js";
import { statementsAdded, type ApprovalStatementDeps } from "./approval-deps.js";

/** What a node's task approvals need of the node. */
export interface TaskApprovalsDeps extends ApprovalStatementDeps {
  /** The engine whose tasks wait for decisions (see TaskEngineOptions.approvalPolicy). */
  engine: Pick<TaskEngine, "openApprovals" | "decideApproval" | "getTask">;
}

/** A task that waits for a decision somewhere in the mesh, as its holder's request says. */
export interface TaskApprovalView extends TaskApprovalRequestBody {
  /** `task/<task id>`: what `approvals approve` and `deny` take, on any member. */
  ref: string;
  /** The request statement's id; empty for this node's own while it is in no mesh (nothing is published then). */
  statementId: string;
}

/** Task approvals as a node sees them: the decisions its own tasks wait for, and requests of every member. */
export interface TaskApprovals {
  /** The engine's `onApprovalNeeded` goes here: publish the request, audit it, deny it when its time is up. */
  asked(gate: OpenGate): void;
  /** Requests of any member that no decision this node accepts has answered and whose time is not up, oldest first. */
  list(): TaskApprovalView[];
  /** Sign a decision on the request for `taskId` (from any member) and add it to the mesh's statements. Resolves with its id. */
  decide(taskId: string, approve: boolean, reason?: string): Promise<string>;
  /**
   * Decide a request of this node's own tasks for a caller the HTTP API has
   * checked for `task:approve` itself: no statement, `by` (the caller) is
   * recorded as the decider. NOT_FOUND for a task that does not wait here.
   */
  decideHere(taskId: string, approve: boolean, by: string, reason?: string): Promise<void>;
  /** Call `listener` whenever a request may have been asked or decided (here or by another member); returns the function that stops it. */
  watch(listener: () => void): () => void;
  /** After a start: ask again for the tasks still waiting, and apply decisions that came meanwhile. */
  start(): Promise<void>;
  close(): void;
}

/** `task/<id>`: the reference of a task approval. */
export const TASK_APPROVAL_PREFIX = "task/";

/**
 * A node's approvals of tasks that policy rules hold. The holder of a task
 * publishes a signed request; a decision is a signed statement naming that
 * request; the holder applies one only when it names a request it holds open,
 * in this mesh, signed by a device it finds may approve. Anything else is
 * refused and audited. No decision before the deadline denies.
 */
export function createTaskApprovals(deps: TaskApprovalsDeps): TaskApprovals {
  /** Open requests of this node's tasks, by task id (`statementId` empty while this node is in no mesh). */
  const mine = new Map<string, TaskApprovalView>();
  const timers = new Map<string, NodeJS.Timeout>();
  let serial: Promise<unknown> = Promise.resolve();
  let closed = false;
  const listeners = new Set<() => void>();
  const changed = (): void => {
    for (const listener of listeners) listener();
  };
  const fail = (err: unknown): void => deps.onError?.(err as Error);
  const self = deps.signer.peerId;

  const audit = (body: Omit<AuditBody, "userId" | "deviceId"> & { by?: string }): Promise<unknown> => {
    const { by = self, ...rest } = body;
    return deps.record({ ...rest, userId: by, deviceId: by });
  };

  const serially = (fn: () => Promise<void>): Promise<void> => {
    const run = serial.then(fn);
    serial = run.catch(fail);
    return run;
  };

  const conclude = async (taskId: string, verdict: ApprovalVerdict): Promise<void> => {
    if (!(await deps.engine.decideApproval(taskId, verdict))) return;
    mine.delete(taskId);
    changed();
    clearTimeout(timers.get(taskId));
    timers.delete(taskId);
    await audit({ action: "approval.decide", by: verdict.by === "timeout" ? self : verdict.by, resource: `${TASK_APPROVAL_PREFIX}${taskId}`, result: verdict.approved ? "allowed" : "denied", reason: `${verdict.approved ? "approved" : "denied"}: ${verdict.reason}${verdict.statementId === undefined ? "" : ` (statement ${verdict.statementId.slice(0, 16)})`}` });
  };

  const armTimer = (gate: OpenGate): void => {
    clearTimeout(timers.get(gate.taskId));
    const timer = setTimeout(() => void serially(() => conclude(gate.taskId, { approved: false, by: "timeout", reason: `no decision by ${new Date(gate.deadline).toISOString()}` })), Math.max(0, gate.deadline - Date.now()));
    timer.unref();
    timers.set(gate.taskId, timer);
  };

  /**
   * Take up a task of this node that waits: arm its deadline and, in a mesh,
   * sign and publish its request. Signing is deterministic: asked again after a
   * restart, it is the same statement.
   */
  const publish = async (gate: OpenGate, announce: boolean): Promise<void> => {
    const task = await deps.engine.getTask(gate.taskId);
    if (task === null) return;
    const meshId = deps.meshId();
    // The device that sent it here, else this node's own.
    const submittedBy = task.submittedBy !== undefined && isDeviceId(task.submittedBy) ? task.submittedBy : self;
    const body = { meshId: meshId ?? "", taskId: gate.taskId, agentId: task.agentId ?? "echo", submittedBy, description: task.description.slice(0, 200), rule: gate.rule.slice(0, 300), askedAt: gate.askedAt, deadline: gate.deadline };
    const request = meshId === undefined ? undefined : signTaskApprovalRequest(deps.signer, { ...body, meshId });
    mine.set(gate.taskId, { ...body, signer: self, ref: `${TASK_APPROVAL_PREFIX}${gate.taskId}`, statementId: request?.id ?? "" });
    armTimer(gate);
    changed();
    if (request !== undefined) {
      const { refused } = await deps.set.add([{ id: request.id, kind: "statement", bytes: request.bytes }]);
      if (refused.length > 0) throw new CoderClawError("UNAVAILABLE", `the approval request for task ${gate.taskId} was not taken into the mesh's statements: ${refused[0]!.reason}`);
    }
    if (announce) await audit({ action: "approval.request", resource: `${TASK_APPROVAL_PREFIX}${gate.taskId}`, result: "allowed", reason: `${gate.rule}; decide by ${new Date(gate.deadline).toISOString()}${request === undefined ? "" : ` (statement ${request.id.slice(0, 16)})`}` });
  };

  /** Act on one decision if it answers a request of this node; `quiet` skips auditing decisions that are no longer news. */
  const handle = async (st: SignedStatement<"task-approval-decision">, quiet: boolean): Promise<void> => {
    const { body } = st;
    const requestId = mine.get(body.taskId)?.statementId;
    const refuse = (reason: string): Promise<unknown> =>
      audit({ action: "approval.decide", by: body.signer, resource: `${TASK_APPROVAL_PREFIX}${body.taskId}`, result: "denied", reason: `${reason} (statement ${st.id.slice(0, 16)})` });
    if (requestId === undefined) {
      // Not ours, or decided already: only a late decision on one of our own requests is worth a line.
      if (!quiet && body.meshId === deps.meshId() && (await deps.engine.getTask(body.taskId).catch(() => null)) !== null && requestOf(body.request)?.body.signer === self) await refuse("the request was decided already");
      return;
    }
    if (body.request !== requestId) return void (await refuse(`names request ${body.request.slice(0, 16)}, but task ${body.taskId} waits on request ${requestId.slice(0, 16)}`));
    if (body.meshId !== deps.meshId()) return void (await refuse(`signed for mesh ${body.meshId}, not this one`));
    // No decision by the deadline denies: one made after it, taken up by a holder that restarts before its timer fires, is none.
    const deadline = mine.get(body.taskId)!.deadline;
    if (body.decidedAt > deadline) return void (await refuse(`decided at ${new Date(body.decidedAt).toISOString()}, after the request's deadline ${new Date(deadline).toISOString()}`));
    const may = deps.canApprove(body.signer);
    if (!may.allowed) return void (await refuse(`${body.signer} may not approve: ${may.reason ?? "task:approve not granted"}`));
    await conclude(body.taskId, { approved: body.approve, by: body.signer, reason: body.reason, statementId: st.id });
  };

  const requestOf = (id: string): SignedStatement<"task-approval-request"> | undefined => {
    for (const s of deps.set.statements()) if (s.id === id) return asTaskApprovalRequest(s);
    return undefined;
  };

  const take = (statements: Iterable<SignedStatement>, quiet: boolean): Promise<void> =>
    serially(async () => {
      for (const s of statements) {
        const decision = asTaskApprovalDecision(s);
        if (decision !== undefined) await handle(decision, quiet).catch(fail);
      }
    });

  // Another member's request or a decision changes what waits, even when it is none of this node's tasks.
  const unsubscribe = deps.set.onAdded((items) => {
    changed();
    void take(statementsAdded(items), false);
  });

  return {
    asked(gate) {
      if (closed) return;
      void serially(() => publish(gate, true));
    },
    list() {
      const now = Date.now();
      const meshId = deps.meshId();
      const others: TaskApprovalView[] = [];
      /** The earliest decision on each request by a device that may approve: one made after the request's deadline answers nothing. */
      const answered = new Map<string, number>();
      for (const s of deps.set.statements()) {
        const request = asTaskApprovalRequest(s);
        // This node's own requests come from what it holds open, not from the set. Only the device a task's id is bound
        // to holds it: another member's request for that task is a decoy its holder would refuse every decision on.
        if (request !== undefined && request.body.signer !== self && request.body.meshId === meshId && request.body.deadline > now && isTaskIdOf(request.body.taskId, request.body.signer)) {
          others.push({ ...request.body, ref: `${TASK_APPROVAL_PREFIX}${request.body.taskId}`, statementId: request.id });
        }
        const decision = asTaskApprovalDecision(s);
        if (decision !== undefined && deps.canApprove(decision.body.signer).allowed) answered.set(decision.body.request, Math.min(decision.body.decidedAt, answered.get(decision.body.request) ?? Infinity));
      }
      return [...mine.values(), ...others.filter((r) => !((answered.get(r.statementId) ?? Infinity) <= r.deadline))].sort((a, b) => a.askedAt - b.askedAt);
    },
    async decide(taskId, approve, reason = "") {
      const meshId = deps.meshId();
      if (meshId === undefined) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: a decision is a statement of the mesh");
      if (reason.length > 1000) throw new InvalidInputError("over 1000 characters", "reason");
      const request = this.list().find((r) => r.taskId === taskId);
      if (request === undefined) throw new NotFoundError("approval request", `${TASK_APPROVAL_PREFIX}${taskId}`);
      const statement = signTaskApprovalDecision(deps.signer, { meshId, request: request.statementId, taskId, approve, reason });
      const { refused } = await deps.set.add([{ id: statement.id, kind: "statement", bytes: statement.bytes }]);
      if (refused.length > 0) throw new CoderClawError("PERMISSION_DENIED", `the decision was not taken into the mesh's statements: ${refused[0]!.reason}`);
      await audit({ action: "approval.sign", resource: request.ref, result: "allowed", reason: `${approve ? "approve" : "deny"}: ${reason}` });
      // A decision on a task of this node has been acted on (or refused) by the time this resolves.
      await serial;
      return statement.id;
    },
    async decideHere(taskId, approve, by, reason = "") {
      if (reason.length > 1000) throw new InvalidInputError("over 1000 characters", "reason");
      let found = false;
      await serially(async () => {
        if (!mine.has(taskId)) return;
        found = true;
        await conclude(taskId, { approved: approve, by, reason });
      });
      if (!found) throw new NotFoundError("approval request of this node", `${TASK_APPROVAL_PREFIX}${taskId}`);
    },
    async start() {
      await serially(async () => {
        for (const gate of deps.engine.openApprovals()) await publish(gate, false).catch(fail);
      });
      await take(deps.set.statements(), true);
    },
    watch(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    close() {
      closed = true;
      listeners.clear();
      unsubscribe();
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
