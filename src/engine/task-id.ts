import { createHash, randomUUID } from "node:crypto";

let lastMs = 0;
let counter = 0;

/**
 * Task ids minted before this time carry no executor binding (see
 * {@link isTaskIdOf}): they were made by versions that drew all 62 low bits at
 * random.
 */
export const BOUND_TASK_IDS_SINCE = Date.UTC(2026, 11, 4);

/** The 48 bits (12 hex digits) that tie a task id to the device that executes it. */
function executorBits(executorId: string): string {
  return createHash("sha256").update("coderclaw/task-id/1\n").update(executorId).digest("hex").slice(0, 12);
}

/**
 * A new task id: a UUIDv7 (RFC 9562) whose 12 bits after the millisecond
 * timestamp count up within a millisecond, so ids sort in the order this process
 * issued them. The indexes break ties between tasks created in the same
 * millisecond by id, and recovery restarts queued tasks in index order: with
 * random ids, a burst of submissions would restart shuffled.
 *
 * With `executorId`, the last 48 bits are a hash of it: the id itself names the
 * only device whose writes to the task are taken, so another member cannot
 * claim the id first with a document of its own (it would have to find a device
 * key hashing to those bits). Uniqueness then rests on the time, the counter and
 * 14 random bits, within one executor.
 */
export function newTaskId(now = Date.now(), executorId?: string): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else if (++counter > 0xfff) {
    // Over 4,096 ids in one millisecond: borrow the next one rather than wrap around.
    lastMs++;
    counter = 0;
  }
  const ms = lastMs.toString(16).padStart(12, "0");
  // The variant and the random bits come from a v4 UUID's last two groups.
  const tail = randomUUID().slice(19);
  const low = executorId === undefined ? tail.slice(5) : executorBits(executorId);
  return `${ms.slice(0, 8)}-${ms.slice(8)}-7${counter.toString(16).padStart(3, "0")}-${tail.slice(0, 4)}-${low}`;
}

/**
 * True when `taskId` may be executed by `executorId`: its low bits name that
 * device, or it was minted before ids were bound ({@link BOUND_TASK_IDS_SINCE}).
 */
export function isTaskIdOf(taskId: string, executorId: string): boolean {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[0-9a-f]{4}-([0-9a-f]{12})$/.exec(taskId);
  if (m === null) return false;
  if (parseInt(m[1]! + m[2]!, 16) < BOUND_TASK_IDS_SINCE) return true;
  return m[3] === executorBits(executorId);
}
