export {
  createSyncCodec,
  entriesMessage,
  haveMessage,
  MAX_SYNC_NEIGHBOURS,
  MAX_SYNC_FRAME_BYTES,
  patchMessage,
  peersMessage,
  summaryMessage,
  SYNC_PROTOCOL,
  SYNC_VERSION,
  syncMessage,
  wantMessage,
  type EntriesMessage,
  type HaveMessage,
  type PatchMessage,
  type PeersMessage,
  type SummaryMessage,
  type SyncMessage,
  type WantMessage,
} from "./messages.js";
export { headsLeaf, MAX_BATCH, signHeads, signHeadsBatch, verifyHeads, type HeadsSignature } from "./heads-signature.js";
export { createReplicaAuthority, ECHO, SIGNATURE_PREFIX, type ReplicaAuthority, type ReplicaAuthorityOptions, type Refusal, type WriterRule } from "./replica-authority.js";
export { PeerSession, signedPatch, type PatchItem, type PeerSessionOptions, type RefusedChange } from "./peer-session.js";
export { createLivePush, type LivePush, type LivePushOptions } from "./live-push.js";
