/**
 * The security service: RBAC, repository and organization policies, sessions,
 * identity providers and the tamper-evident audit log.
 *
 * @packageDocumentation
 */
export * from "./permissions.js";
export * from "./roles.js";
export * from "./trust.js";
export * from "./context.js";
export * from "./keys.js";
export * from "./canonical.js";
export * from "./grants.js";
export * from "./policy-schema.js";
export * from "./policy-file.js";
export * from "./policy-statement.js";
export * from "./policy-set.js";
export * from "./authorizer.js";
export * from "./audit/entry.js";
export { segmentDocId, type SegmentDoc, type AuditDatabase } from "./audit/segments.js";
export * from "./audit/verify.js";
export * from "./audit/log.js";
export * from "./errors.js";
export * from "./sessions.js";
export * from "./providers.js";
export * from "./service.js";
