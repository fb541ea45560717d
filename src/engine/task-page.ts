import type { TaskPageFilter, TaskState } from "../contract/types.js";

/** Most tasks one page looks at when its filter is not answered by an index (agent, executor, a caller's rights). */
export const PAGE_SCAN = 2000;
/** Ids read from the index at a time while filling a page. */
export const PAGE_SCAN_BATCH = 250;

/**
 * Whether a listed task matches a page's filter. Status and session are checked
 * again although an index chose the ids: an index entry may lag its task.
 */
export function matchesPage(task: TaskState, filter: TaskPageFilter): boolean {
  if (filter.status !== undefined && task.status !== filter.status) return false;
  if (filter.sessionId !== undefined && task.sessionId !== filter.sessionId) return false;
  if (filter.agentId !== undefined && task.agentId !== filter.agentId) return false;
  return filter.executor === undefined || executorOf(task).includes(filter.executor);
}

/** The device a task runs or ran on: the member its placement names, else the engine that keeps it. */
function executorOf(task: TaskState): string {
  return task.placement?.runsOn ?? task.executorId ?? "";
}
