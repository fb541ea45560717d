import { decodeStatement, issueRevocation, type SignedStatement, type StatementSigner } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { signRoleGrant, type RoleGrant } from "../../src/security/grants.js";
import type { Signer } from "../../src/security/keys.js";
import type { SecurityService } from "../../src/security/service.js";

/** What granting and revoking roles needs of the node. */
export interface RoleAdminDeps {
  /** This device: it signs the grants and revocations. */
  signer: Signer & StatementSigner;
  meshId: string | undefined;
  /** The node's security service as it is now (grants in force, the role table). */
  security: SecurityService;
  /** Adds signed statements to the mesh's set, from where they replicate. */
  publish: (statements: readonly SignedStatement[]) => Promise<void>;
}

function requireAdmin(deps: RoleAdminDeps): string {
  if (deps.meshId === undefined) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: roles are granted within one");
  if (!deps.security.grants.isAdmin(deps.signer.peerId)) {
    throw new CoderClawError("PERMISSION_DENIED", `only an admin of the mesh grants and revokes roles, and this device (${deps.signer.peerId}) is not one; an admin can grant it admin with \`coderclaw roles grant ${deps.signer.peerId} admin\``);
  }
  return deps.meshId;
}

/**
 * Grant `roles` to `subject` (a device or user id), signed by this device,
 * which must be an admin. Refused, changing nothing, when a role is unknown
 * here or the subject holds every role already. Resolves with the grant's
 * statement id.
 */
export async function grantRoles(deps: RoleAdminDeps, subject: string, roles: readonly string[], expiresAt?: number): Promise<{ grant: string; roles: string[] }> {
  const meshId = requireAdmin(deps);
  const table = deps.security.authorizer.roles;
  const unknown = roles.filter((r) => !table.has(r));
  if (unknown.length > 0) throw new CoderClawError("INVALID_INPUT", `unknown role ${unknown.join(", ")}: the roles here are ${table.names.join(", ")}`, { field: "roles" });
  const held = deps.security.grants.rolesOf(subject);
  const fresh = [...new Set(roles)].filter((r) => !held.has(r)).sort();
  if (fresh.length === 0 && expiresAt === undefined) throw new CoderClawError("INVALID_INPUT", `${subject} holds ${[...new Set(roles)].join(", ")} already; a grant would change nothing`, { field: "roles" });
  const bytes = signRoleGrant(deps.signer, { subject, roles: expiresAt === undefined ? fresh : [...new Set(roles)].sort(), meshId, ...(expiresAt !== undefined && { expiresAt }) });
  const statement = decodeStatement(bytes);
  await deps.publish([statement]);
  return { grant: statement.id, roles: (statement.body as RoleGrant).roles };
}

/**
 * Take `role` from `subject`: every grant in force that gives it is revoked,
 * and the other roles those grants gave are granted again in one new grant
 * (same expiry), so only `role` goes. Refused, changing nothing, when the
 * subject does not hold the role by a grant, or holds it as the mesh's founder.
 * Resolves with the statements' ids.
 */
export async function revokeRole(deps: RoleAdminDeps, subject: string, role: string, reason: string): Promise<{ revoked: string[]; regranted?: string }> {
  const meshId = requireAdmin(deps);
  const grants = deps.security.grants;
  if (role === "admin" && grants.isRootAdmin(subject)) throw new CoderClawError("PERMISSION_DENIED", `${subject} founded the mesh and is its admin by construction: no revocation takes that away`, { field: "subject" });
  const giving = grants.grantsOf(subject).filter(({ grant }) => grant.roles.includes(role));
  if (giving.length === 0) throw new CoderClawError("INVALID_INPUT", `${subject} holds no grant of ${role} in force; nothing to revoke (its roles: ${[...grants.rolesOf(subject)].sort().join(", ") || "none"})`, { field: "role" });
  const statements: SignedStatement[] = giving.map(({ id }) => issueRevocation(deps.signer, id, reason.slice(0, 256) || `${role} revoked`));
  const rest = [...new Set(giving.flatMap(({ grant }) => grant.roles))].filter((r) => r !== role).sort();
  let regranted: string | undefined;
  if (rest.length > 0) {
    const expiries = giving.map(({ grant }) => grant.expiresAt);
    const expiresAt = expiries.some((e) => e === undefined) ? undefined : Math.max(...(expiries as number[]));
    const again = decodeStatement(signRoleGrant(deps.signer, { subject, roles: rest, meshId, ...(expiresAt !== undefined && { expiresAt }) }));
    statements.push(again);
    regranted = again.id;
  }
  await deps.publish(statements);
  return { revoked: giving.map(({ id }) => id), ...(regranted !== undefined && { regranted }) };
}
