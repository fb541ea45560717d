import type { RetryPolicy, WorkflowDefinition, WorkflowStep } from "./definition.js";

/** Where one step stands. */
export type StepStatus =
  /** Waiting for its dependencies. */
  | "pending"
  /** A try is under way (or being submitted). */
  | "running"
  /** A try failed; the next starts at `retryAt`. */
  | "retrying"
  | "completed"
  | "failed"
  /** Not run: the workflow failed or was cancelled first. */
  | "skipped"
  | "cancelled";

/** One try of a step: an ordinary task. */
export interface StepAttempt {
  /** From 1. */
  n: number;
  /** The idempotency key the task was submitted under: the same try is never submitted as two tasks. */
  key: string;
  /** The task, once the runtime took it. */
  taskId?: string;
  startedAt: number;
  endedAt?: number;
  outcome?: "completed" | "failed" | "cancelled";
  error?: string;
}

/** The reason a step gated by an approval gives while it waits for the decision. */
export const AWAITING_APPROVAL = "awaiting approval";

/** A person's decision on a step's approval request, as the coordinator recorded it. */
export interface ApprovalDecision {
  approved: boolean;
  /** The device whose signed statement carried the decision; absent when the deadline passed without one. */
  by?: string;
  reason: string;
  at: number;
  /** The id of the signed statement that carried it, when one did. */
  statementId?: string;
}

/** A step's request for approval: asked when its dependencies completed, decided once. */
export interface ApprovalRequest {
  /** Unguessable and used once: a decision names it, so it cannot be replayed onto another request. */
  id: string;
  askedAt: number;
  /** No decision by then denies it. */
  deadline: number;
  decision?: ApprovalDecision;
}

/** A step's record. */
export interface StepRecord {
  status: StepStatus;
  /** Why a pending step does not start although its dependencies are done ({@link AWAITING_APPROVAL}). */
  reason?: string;
  approval?: ApprovalRequest;
  attempts: StepAttempt[];
  output?: string;
  error?: string;
  /** When the next try may start, ms since the epoch. */
  retryAt?: number;
}

/** Where a workflow stands. */
export type WorkflowStatus = "running" | "completed" | "failed" | "cancelled";

/** Who started a workflow: the subject (user id), and the session it used when it came over HTTP. */
export interface WorkflowStarter {
  subject: string;
  sessionId?: string;
}

/** A workflow's durable state: what the coordinator carries on from after a restart. */
export interface WorkflowRecord {
  id: string;
  /** The device that coordinates it: the only writer of its document, named by its id's low bits. */
  coordinator?: string;
  /** Who started it; absent: the coordinator's owner. Over HTTP only its session, and `admin:all`, read or cancel it. */
  startedBy?: WorkflowStarter;
  definition: WorkflowDefinition;
  /** The workflow's input: text, or named values. */
  input: string | Record<string, string>;
  status: WorkflowStatus;
  createdAt: number;
  endedAt?: number;
  error?: string;
  steps: Record<string, StepRecord>;
}

/** Every {@link StepStatus}: the type makes this list whole, so a status added there is added here. */
const STEP_STATUSES: Readonly<Record<StepStatus, true>> = { pending: true, running: true, retrying: true, completed: true, failed: true, skipped: true, cancelled: true };

/** Whether `value` is a step's status (read from a document another member wrote). */
export function isStepStatus(value: unknown): value is StepStatus {
  return typeof value === "string" && Object.hasOwn(STEP_STATUSES, value);
}

const TERMINAL_STEP = new Set<StepStatus>(["completed", "failed", "skipped", "cancelled"]);

/** Whether a step is done, one way or another. */
export function stepEnded(status: StepStatus): boolean {
  return TERMINAL_STEP.has(status);
}

/** A new record: every step pending. */
export function newWorkflowRecord(id: string, definition: WorkflowDefinition, input: string | Record<string, string>, now: number, coordinator?: string, startedBy?: WorkflowStarter): WorkflowRecord {
  const steps: Record<string, StepRecord> = {};
  for (const step of definition.steps) steps[step.id] = { status: "pending", attempts: [] };
  return { id, ...(coordinator !== undefined && { coordinator }), ...(startedBy !== undefined && { startedBy }), definition, input, status: "running", createdAt: now, steps };
}

/**
 * Steps that may start now: pending ones whose dependencies all ended
 * completed (or failed, for a dependency allowed to fail), and retrying ones
 * whose wait is over. Nothing starts once the workflow has ended. With
 * `among`, only those steps are looked at.
 */
export function stepsToStart(record: WorkflowRecord, now: number, among: readonly WorkflowStep[] = record.definition.steps): string[] {
  if (record.status !== "running") return [];
  const out: string[] = [];
  for (const step of among) {
    const r = record.steps[step.id]!;
    if (r.status === "retrying" && (r.retryAt ?? 0) <= now) out.push(step.id);
    if (r.status !== "pending") continue;
    if (step.approval !== undefined && r.approval?.decision?.approved !== true) continue;
    if (dependenciesDone(record, step.dependsOn)) out.push(step.id);
  }
  return out;
}

/**
 * Gated steps whose dependencies are done and that have not asked for their
 * approval yet: the coordinator asks, and they start once approved. With
 * `among`, only those steps are looked at.
 */
export function approvalsToAsk(record: WorkflowRecord, among: readonly WorkflowStep[] = record.definition.steps): string[] {
  if (record.status !== "running") return [];
  return among
    .filter((step) => {
      const r = record.steps[step.id]!;
      return step.approval !== undefined && r.status === "pending" && r.approval === undefined && dependenciesDone(record, step.dependsOn);
    })
    .map((s) => s.id);
}

function dependenciesDone(record: WorkflowRecord, dependsOn: readonly string[]): boolean {
  return dependsOn.every((d) => {
    const dep = record.steps[d]!;
    return dep.status === "completed" || (dep.status === "failed" && record.definition.steps.find((s) => s.id === d)!.continueOnFailure);
  });
}

/** The earliest time a retrying step may start, if any waits. */
export function nextRetryAt(record: WorkflowRecord): number | undefined {
  let next: number | undefined;
  for (const r of Object.values(record.steps)) if (r.status === "retrying" && r.retryAt !== undefined) next = next === undefined ? r.retryAt : Math.min(next, r.retryAt);
  return next;
}

/** The wait before try `n + 1`, after try `n` (from 1) failed. */
export function backoffAfter(retry: RetryPolicy, n: number): number {
  return Math.min(retry.maxBackoffMs, retry.backoffMs * retry.factor ** (n - 1));
}

/**
 * How the workflow ends, once it does: failed as soon as a step that may not
 * fail has failed (its error named), completed once every step ended and none
 * failed that may not. Undefined while it goes on.
 */
export function workflowOutcome(record: WorkflowRecord): { status: "completed" } | { status: "failed"; error: string } | undefined {
  for (const step of record.definition.steps) {
    const r = record.steps[step.id]!;
    if (r.status === "failed" && !step.continueOnFailure) return { status: "failed", error: `step ${step.id} failed: ${r.error ?? "failed"}` };
  }
  return Object.values(record.steps).every((r) => stepEnded(r.status)) ? { status: "completed" } : undefined;
}

/**
 * {@link workflowOutcome} after only step `settled` ended, given that every
 * step before index `endedBefore` of the definition had ended: only `settled`
 * can have failed the workflow (an earlier failure ended it then), and the
 * steps known ended are not looked at again (an ended step stays ended), so a
 * hundred steps ending cost a hundred looks, not ten thousand. Returns the
 * outcome and how far the steps have ended now, for the next call.
 */
export function workflowOutcomeAfter(record: WorkflowRecord, settled: WorkflowStep, endedBefore: number): { outcome: ReturnType<typeof workflowOutcome>; endedBefore: number } {
  const r = record.steps[settled.id]!;
  if (r.status === "failed" && !settled.continueOnFailure) return { outcome: { status: "failed", error: `step ${settled.id} failed: ${r.error ?? "failed"}` }, endedBefore };
  const steps = record.definition.steps;
  let i = endedBefore;
  while (i < steps.length && stepEnded(record.steps[steps[i]!.id]!.status)) i++;
  return { outcome: i === steps.length ? { status: "completed" } : undefined, endedBefore: i };
}
