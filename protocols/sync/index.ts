export {
  createSyncCodec,
  entriesMessage,
  MAX_SYNC_FRAME_BYTES,
  patchMessage,
  summaryMessage,
  SYNC_PROTOCOL,
  SYNC_VERSION,
  syncMessage,
  wantMessage,
  type EntriesMessage,
  type PatchMessage,
  type SummaryMessage,
  type SyncMessage,
  type WantMessage,
} from "./messages.js";
export { headsLeaf, MAX_BATCH, signHeads, signHeadsBatch, verifyHeads, type HeadsSignature } from "./heads-signature.js";
