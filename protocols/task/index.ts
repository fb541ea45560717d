export {
  TASK_PROTOCOL,
  TASK_PROTOCOL_VERSION,
  MAX_TASK_MESSAGE_BYTES,
  MAX_EVENTS_PER_MESSAGE,
  MAX_SUBMITS_PER_MESSAGE,
  createTaskCodec,
  submitEnvelopeSchema,
  taskMessageSchema,
  wireEventSchema,
  wireStateSchema,
  type SubmitEnvelope,
  type TaskMessage,
} from "./messages.js";
export { submitSignedBytes } from "./submit-signature.js";
export { eventFromWire, eventToWire, stateFromWire, stateToWire, updateFromWire } from "./wire.js";
export { LEASE_INTERVAL_MS, LEASE_TIMEOUT_MS, LeaseBook, LeaseRenewals, presumedLost, type Lease, type LeaseRenewalsOptions } from "./lease.js";
export { TaskRequester, taskRequestShape, type TaskRequesterOptions } from "./client.js";
export {
  createTaskExecutor,
  type AuthorizeSubmit,
  type SubmissionReplays,
  type SubmitDecision,
  type TaskEngineLike,
  type TaskExecutor,
  type TaskExecutorOptions,
} from "./server.js";
