export { createSyncEngine, REPLICATED_PREFIXES, type SyncEngine, type SyncEngineOptions } from "./sync-engine.js";
