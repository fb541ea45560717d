export { AUDIT_PAGE, AUDIT_PROTOCOL, AUDIT_PROTOCOL_VERSION, auditMessageSchema, createAuditCodec, type AuditMessage } from "./messages.js";
export { AuditRefusedError, auditRequestShape, pullAuditLog, serveAuditLog, type PullReport, type ReplicatedLog } from "./replication.js";
