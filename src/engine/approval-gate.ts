import type { TaskEvent, TaskSubmitRequest } from "../contract/types.js";

/** Why a task must wait for a decision before it may start, and until when. */
export interface ApprovalNeed {
  /** The policy rule that asks for it, as people read it (`agentPolicies.shell`). */
  rule: string;
  /** How long a decision may take; none by then denies. */
  timeoutMs: number;
}

/** Asks, per task about to be queued, whether a policy wants a decision first; undefined when not. */
export type ApprovalPolicy = (request: Readonly<TaskSubmitRequest>, submittedBy: string | undefined) => ApprovalNeed | undefined;

/** A decision on a task that waits for one. */
export interface ApprovalVerdict {
  approved: boolean;
  /** The device that decided, or `timeout`. */
  by: string;
  reason: string;
  /** The signed statement the decision came in, when it came in one. */
  statementId?: string;
}

/** A task that waits for a decision, as the engine reports it. */
export interface OpenGate {
  taskId: string;
  rule: string;
  askedAt: number;
  deadline: number;
}

/** What the history entry of an approval step carries in `data.approval`. */
type GateMark = { state: "asked"; rule: string; askedAt: number; deadline: number } | { state: "approved"; by: string; statementId?: string };

/** The `data` of the entry that records a task now waits for a decision. */
export function askedMark(gate: OpenGate): { approval: GateMark } {
  return { approval: { state: "asked", rule: gate.rule, askedAt: gate.askedAt, deadline: gate.deadline } };
}

/** The `data` of the entry that records a task was approved. */
export function approvedMark(verdict: ApprovalVerdict): { approval: GateMark } {
  return { approval: { state: "approved", by: verdict.by, ...(verdict.statementId !== undefined && { statementId: verdict.statementId }) } };
}

function markOf(e: TaskEvent): GateMark | undefined {
  const approval = (e.data as { approval?: unknown } | undefined)?.approval;
  if (typeof approval !== "object" || approval === null) return undefined;
  const m = approval as Partial<GateMark> & Record<string, unknown>;
  if (m.state === "approved" && typeof m.by === "string") return m as GateMark;
  if (m.state === "asked" && typeof m.rule === "string" && typeof m.askedAt === "number" && typeof m.deadline === "number") return m as GateMark;
  return undefined;
}

/**
 * The decision a recovered task still waits for, read from its history: the
 * last approval entry is an `asked` one. Undefined when it never waited for one
 * or was approved (a denied task has ended).
 */
export function openGateIn(taskId: string, events: readonly TaskEvent[]): OpenGate | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const m = markOf(events[i]!);
    if (m === undefined) continue;
    return m.state === "asked" ? { taskId, rule: m.rule, askedAt: m.askedAt, deadline: m.deadline } : undefined;
  }
  return undefined;
}
