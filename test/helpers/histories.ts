import type { TaskEvent } from "../../src/contract/types.js";
import { canTransition } from "../../src/engine/state-machine.js";

/** Why a history is not legal, or undefined when it is: sequence numbers count up from 1 and every status change is an edge of the lifecycle. */
export function illegal(events: readonly TaskEvent[]): string | undefined {
  let status = "pending";
  for (const [i, e] of events.entries()) {
    if (e.seq !== i + 1) return `event ${i} has seq ${e.seq}`;
    if (e.type !== "status_changed" || i === 0) continue;
    if (e.status !== status && !canTransition(status as TaskEvent["status"], e.status)) return `${status} -> ${e.status}`;
    status = e.status;
  }
  return undefined;
}
