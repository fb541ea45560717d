import { randomUUID } from "node:crypto";

let lastMs = 0;
let counter = 0;

/**
 * A new task id: a UUIDv7 (RFC 9562) whose 12 bits after the millisecond
 * timestamp count up within a millisecond, so ids sort in the order this process
 * issued them. The indexes break ties between tasks created in the same
 * millisecond by id, and recovery restarts queued tasks in index order: with
 * random ids, a burst of submissions would restart shuffled.
 */
export function newTaskId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else if (++counter > 0xfff) {
    // Over 4,096 ids in one millisecond: borrow the next one rather than wrap around.
    lastMs++;
    counter = 0;
  }
  const ms = lastMs.toString(16).padStart(12, "0");
  // The variant and the 62 random bits come from a v4 UUID's last two groups.
  return `${ms.slice(0, 8)}-${ms.slice(8)}-7${counter.toString(16).padStart(3, "0")}-${randomUUID().slice(19)}`;
}
