import type { TaskEvent, TaskState, TaskUpdateEvent } from "../../src/contract/types.js";
import type { z } from "zod";
import type { wireEventSchema, wireStateSchema } from "./messages.js";

type WireState = z.infer<typeof wireStateSchema>;
type WireEvent = z.infer<typeof wireEventSchema>;

/** Drop undefined fields: strict CBOR has no undefined. */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

/** TaskState to its wire form. */
export function stateToWire(s: TaskState): WireState {
  return defined({
    id: s.id,
    status: s.status,
    agentId: s.agentId,
    description: s.description,
    sessionId: s.sessionId,
    parentTaskId: s.parentTaskId,
    createdAt: s.createdAt.getTime(),
    startedAt: s.startedAt?.getTime(),
    completedAt: s.completedAt?.getTime(),
    output: s.output,
    error: s.error,
    progress: s.progress,
    metadata: s.metadata,
    executorId: s.executorId,
    submittedBy: s.submittedBy,
    placement: s.placement === undefined ? undefined : defined({ ...s.placement, deadline: s.placement.deadline?.getTime() }),
  });
}

/** Wire form back to TaskState. */
export function stateFromWire(w: WireState): TaskState {
  const { createdAt, startedAt, completedAt, placement, ...rest } = w;
  const s = defined({ ...rest }) as TaskState;
  s.createdAt = new Date(createdAt);
  if (placement !== undefined) {
    const { deadline, ...moving } = placement;
    s.placement = defined({ ...moving });
    if (deadline !== undefined) s.placement.deadline = new Date(deadline);
  }
  if (startedAt !== undefined) s.startedAt = new Date(startedAt);
  if (completedAt !== undefined) s.completedAt = new Date(completedAt);
  return s;
}

/** A history entry to its wire form. */
export function eventToWire(e: TaskEvent): WireEvent {
  return defined({ seq: e.seq, type: e.type, ts: e.timestamp.getTime(), status: e.status, message: e.message, progress: e.progress, data: e.data });
}

/** Wire form back to a history entry. */
export function eventFromWire(w: WireEvent): TaskEvent {
  const { ts, ...rest } = w;
  return { ...defined({ ...rest }), timestamp: new Date(ts) };
}

/** Wire event to a stream update of `taskId`. */
export function updateFromWire(taskId: string, w: WireEvent): TaskUpdateEvent {
  return defined({ taskId, status: w.status, timestamp: new Date(w.ts), message: w.message, progress: w.progress, data: w.data, seq: w.seq });
}
