export { createSyncEngine, REPLICATED_PREFIXES, type SyncEngine, type SyncEngineOptions, type SyncStore } from "./sync-engine.js";
export { createReplicaAuthority, ECHO, TASK_WRITER_RULE, SIGNATURE_PREFIX, type ReplicaAuthority, type ReplicaAuthorityOptions, type Refusal, type WriterRule } from "./replica-authority.js";
export { createQuarantine, type Quarantine, type QuarantineEntry, type QuarantineOptions } from "./quarantine.js";
export { quarantineUnsignedReplicas, type LegacyReplicaOptions } from "./legacy-replicas.js";
export { signedPatch, type PatchItem, type RefusedChange } from "./peer-session.js";
