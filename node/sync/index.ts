export { createSyncEngine, OFFENDER_BLOCK_MS, REPLICATED_PREFIXES, syncService, type SyncEngine, type SyncEngineOptions, type SyncStore } from "./sync-engine.js";
export { createReplicaAuthority, ECHO, SIGNATURE_PREFIX, type ReplicaAuthority, type ReplicaAuthorityOptions, type Refusal, type WriterRule } from "../../protocols/sync/replica-authority.js";
export { TASK_WRITER_RULE } from "./task-writer-rule.js";
export { createQuarantine, type Quarantine, type QuarantineEntry, type QuarantineOptions } from "./quarantine.js";
export { quarantineUnsignedReplicas, type LegacyReplicaOptions } from "./legacy-replicas.js";
export { signedPatch, type PatchItem, type RefusedChange } from "../../protocols/sync/peer-session.js";
