import { InvalidTransitionError } from "../contract/errors.js";
import type { TaskEvent, TaskStatus } from "../contract/types.js";
import { TERMINAL_STATUSES } from "../contract/types.js";

/** The only legal edges of the task lifecycle (docs/architecture.md, Tasks). */
export const TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  pending: ["planning", "cancelled"],
  planning: ["running", "failed", "cancelled"],
  running: ["waiting", "completed", "failed", "cancelled"],
  waiting: ["running", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
};

/** True when `from -> to` is an edge of the lifecycle. */
export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws {@link InvalidTransitionError} unless `from -> to` is legal. */
export function assertTransition(taskId: string, from: TaskStatus, to: TaskStatus): void {
  if (!canTransition(from, to)) throw new InvalidTransitionError(taskId, from, to);
}

/** True for completed, failed and cancelled. */
export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** True for the history entry that ends a task: its change to a terminal status. */
export function isTerminalEvent(e: TaskEvent): boolean {
  return e.type === "status_changed" && isTerminal(e.status);
}
