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
