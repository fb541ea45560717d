export { AUDIT_PAGE, AUDIT_PROTOCOL, AUDIT_PROTOCOL_VERSION, auditMessageSchema, createAuditCodec, type AuditMessage } from "./messages.js";
export { AuditRefusedError, auditRequestShape, pullAuditLog, pullChains, serveAuditLog, type ChainHeads, type PullReport, type ReplicatedLog } from "./replication.js";
