export { askNodeRecord, CAPS_FIRST_REQUEST, capsRequestShape, RecordWatchers, serveNodeRecord, watchNodeRecord, type AskedRecord } from "./exchange.js";
export { CAPS_PROTOCOL, CAPS_VERSION, capsMessage, createCapsCodec, type CapsMessage } from "./messages.js";
export {
  capabilityCid,
  nodeRecordKey,
  nodeRecordKeyString,
  nodeRecordSchema,
  openNodeRecord,
  selectNodeRecord,
  signNodeRecord,
  validateNodeRecord,
  type CapabilityKind,
  type NodeRecord,
  type SignedNodeRecord,
} from "./node-record.js";
