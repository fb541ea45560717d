/**
 * `coderclaw/security`: the security service: RBAC, repository and
 * organization policies, sessions, identity providers and the tamper-evident
 * audit log.
 *
 * @example A decision from a context and the default policies
 * ```ts
 * import { Authorizer, type SecurityContext } from "coderclaw/security";
 *
 * const authorizer = new Authorizer({ meshId: "mesh-example" });
 * const developer: SecurityContext = { userId: "ana", roles: ["developer"], deviceId: "laptop", deviceTrustLevel: "verified", origin: "local", meshId: "mesh-example" };
 * console.log(authorizer.checkPermission(developer, "task:submit")); // { allowed: true, reason: "allowed" }
 * console.log(authorizer.checkSkillAccess(developer, "shell-exec").allowed); // false: dangerous, admins only by default
 * ```
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
export * from "./session-file.js";
export * from "./device-names.js";
export * from "./providers.js";
export * from "./service.js";
