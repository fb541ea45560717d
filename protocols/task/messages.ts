import { z } from "zod";
import { MAX_OUTPUT_LIMIT } from "../../src/agents/output-limit.js";
import { MetadataSchema } from "../../src/contract/metadata.js";
import { RequirementsSchema } from "../../src/contract/submit-options.js";
import { TASK_STATUSES, type TaskStatus } from "../../src/contract/types.js";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";

/** Remote task submission, cancellation, queries and update streams between mesh members. */
export const TASK_PROTOCOL = "/coderclaw/task/1.0.0";
/** Wire version inside every task-protocol envelope (4: idempotency keys, fencing, acknowledged leases). */
export const TASK_PROTOCOL_VERSION = 4;
/** Largest output a task's state carries on the wire: the largest output limit a node may have, plus room for the limit's marker. */
export const MAX_WIRE_OUTPUT_BYTES = MAX_OUTPUT_LIMIT + 4096;
/** A task's final state with the largest output, or a 1 MiB input, plus envelope and a batch of events. */
export const MAX_TASK_MESSAGE_BYTES = MAX_WIRE_OUTPUT_BYTES + 512 * 1024;

const status = z.enum(TASK_STATUSES as [TaskStatus, ...TaskStatus[]]);
const rid = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const taskId = z.string().min(1).max(64);
const ms = z.number().int().min(0);
const text = (max: number) => z.string().max(max);

/** The request a submitter signs: its content, who asks, when, and a nonce against replay. */
export const submitEnvelopeSchema = z.strictObject({
  request: z.strictObject({
    agentId: text(64).optional(),
    description: text(16 * 1024),
    input: text(1024 * 1024),
    model: text(256).optional(),
    thinking: text(64).optional(),
    sessionId: text(128).optional(),
    parentTaskId: text(64).optional(),
    metadata: MetadataSchema.optional(),
  }),
  /** Device id (PeerId) of the requesting node; must be the connection's remote peer. */
  requester: z.string().min(1).max(128),
  meshId: z.string().min(1).max(128),
  issuedAt: ms,
  nonce: bytesSchema,
  /** Session token of the user on whose behalf the node submits, checked by the executor's security service. */
  session: text(4096).optional(),
  /**
   * Idempotency key, unique per requester: an executor that already took a
   * submission from this requester under this key answers with that task
   * instead of creating another. A keyed submission comes from a scheduler, so
   * an executor without a free slot refuses it (BUSY) rather than queue it.
   */
  key: z.string().min(1).max(128).optional(),
  /**
   * The submitter re-places the task elsewhere once this executor has been
   * silent this long, ms: an executor that cannot get its lease renewals
   * acknowledged stops the task (retryable agents only) before then, so it
   * does not also finish it.
   */
  fenceAfterMs: z.number().int().min(500).max(24 * 60 * 60 * 1000).optional(),
});

/** See {@link submitEnvelopeSchema}. */
export type SubmitEnvelope = z.infer<typeof submitEnvelopeSchema>;

/** A task's state on the wire: times as epoch milliseconds. */
export const wireStateSchema = z.strictObject({
  id: taskId,
  status,
  agentId: text(64).optional(),
  description: text(16 * 1024),
  sessionId: text(128).optional(),
  parentTaskId: text(64).optional(),
  createdAt: ms,
  startedAt: ms.optional(),
  completedAt: ms.optional(),
  output: text(MAX_WIRE_OUTPUT_BYTES).optional(),
  error: text(64 * 1024).optional(),
  progress: z.number().min(0).max(100).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  executorId: text(128).optional(),
  submittedBy: text(128).optional(),
  placement: z
    .strictObject({
      reason: text(1024).optional(),
      runsOn: text(128).optional(),
      attemptId: taskId.optional(),
      attempt: z.number().int().min(1).optional(),
      attemptSeq: z.number().int().min(0).optional(),
      priority: z.number().int().optional(),
      requires: RequirementsSchema.optional(),
      deadline: ms.optional(),
      route: text(128).optional(),
    })
    .optional(),
});

/** One history entry or update on the wire. */
export const wireEventSchema = z.strictObject({
  seq: z.number().int().min(1),
  type: z.enum(["created", "status_changed", "progress_updated", "output_added", "error_set"]),
  ts: ms,
  status,
  message: text(128 * 1024).optional(),
  progress: z.number().min(0).max(100).optional(),
  data: z.unknown().optional(),
});

/** Most submissions one `submit` message (and its one signature) carries. */
export const MAX_SUBMITS_PER_MESSAGE = 64;

/** One submission of a `submit` message; `rid` pairs it with its answer. */
const submitItem = z.strictObject({ rid, envelope: bytesSchema, follow: z.boolean().optional() });

/** Most events one `accepted` or `upd` message carries. */
export const MAX_EVENTS_PER_MESSAGE = 1000;
const eventBatch = z.array(wireEventSchema).max(MAX_EVENTS_PER_MESSAGE);

/** Every message of the task protocol, both directions; `rid` pairs answers with requests on the shared stream. */
export const taskMessageSchema = z.discriminatedUnion("t", [
  /**
   * Submissions, each answered on its own rid, under one signature of the requesting device over
   * all their envelopes (see submitSignedBytes): a submitter sends what it submits in one turn of its
   * event loop together, and the executor checks one signature for all of them.
   *
   * With `follow`, the executor answers `accepted` and keeps sending the task's events on the same
   * rid (`upd`, then `end`): a submitter that follows its task saves a round trip, and a task that
   * ends at once travels back in that one answer.
   */
  z.strictObject({ t: z.literal("submit"), sig: bytesSchema, items: z.array(submitItem).min(1).max(MAX_SUBMITS_PER_MESSAGE) }),
  z.strictObject({ t: z.literal("cancel"), rid, taskId }),
  z.strictObject({ t: z.literal("get"), rid, taskId }),
  z.strictObject({ t: z.literal("events"), rid, taskId }),
  z.strictObject({ t: z.literal("sub"), rid, taskId, after: z.number().int().min(0) }),
  z.strictObject({ t: z.literal("unsub"), rid }),
  z.strictObject({ t: z.literal("state"), rid, state: wireStateSchema.nullable() }),
  z.strictObject({ t: z.literal("bool"), rid, value: z.boolean() }),
  z.strictObject({ t: z.literal("history"), rid, events: z.array(wireEventSchema).max(100_000) }),
  /** The answer to a following submit: the task as accepted, its events so far, and whether they already end it. */
  z.strictObject({ t: z.literal("accepted"), rid, state: wireStateSchema, events: eventBatch, end: z.boolean(), final: wireStateSchema.optional(), streamed: z.literal(true).optional() }),
  /**
   * `final`: the task's state once its events end it (its output and error), so a follower need not ask for it.
   * `streamed`: `final` leaves out its output, which is the text of every `output_added` event sent on this
   * request, from the task's first: the follower has it already (see StreamedOutput).
   */
  z.strictObject({ t: z.literal("upd"), rid, taskId, events: eventBatch.min(1), final: wireStateSchema.optional(), streamed: z.literal(true).optional() }),
  z.strictObject({ t: z.literal("end"), rid }),
  z.strictObject({ t: z.literal("err"), rid, code: text(64), message: text(4096), field: text(256).optional() }),
  /** Lease renewal: the executor still holds these tasks of the peer it sends to; `round` numbers it for the acknowledgement. */
  z.strictObject({ t: z.literal("lease"), round: z.number().int().min(0), tasks: z.array(z.strictObject({ id: taskId, status })).max(10_000) }),
  /** The submitter heard lease round `round`: until some time after it, the executor may go on with the tasks it fences. */
  z.strictObject({ t: z.literal("leased"), round: z.number().int().min(0) }),
]);

/** See {@link taskMessageSchema}. */
export type TaskMessage = z.infer<typeof taskMessageSchema>;

/** The strict codec of the task protocol. */
export function createTaskCodec(): MessageCodec<TaskMessage> {
  return createMessageCodec({ version: TASK_PROTOCOL_VERSION, schema: taskMessageSchema, maxMessageBytes: MAX_TASK_MESSAGE_BYTES });
}
