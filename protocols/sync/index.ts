export {
  createSyncCodec,
  docsMessage,
  entriesMessage,
  MAX_SYNC_FRAME_BYTES,
  summaryMessage,
  SYNC_PROTOCOL,
  SYNC_VERSION,
  syncMessage,
  type DocsMessage,
  type EntriesMessage,
  type SummaryMessage,
  type SyncMessage,
} from "./messages.js";
