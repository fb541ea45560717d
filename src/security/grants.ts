import { z } from "zod";
import { decodeStatement, signStatement, type SignedStatement } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, timestampSchema } from "../../identity/statement-kinds.js";
import type { Signer } from "./keys.js";

/** Body of a `role-grant` statement: `issuer` (an admin) grants `roles` to `subject` (a user id or device id) in `meshId`. */
export const roleGrantSchema = z.strictObject({
  issuer: deviceIdSchema,
  subject: z.string().min(1).max(256),
  roles: z.array(z.string().min(1).max(64)).min(1).max(32),
  meshId: meshIdSchema,
  issuedAt: timestampSchema,
  expiresAt: timestampSchema.optional(),
});

/** Body of a `role-grant` statement. */
export type RoleGrant = z.infer<typeof roleGrantSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    "role-grant": RoleGrant;
  }
}

registerStatementKindOnce("role-grant", { schema: roleGrantSchema, signer: (body) => body.issuer });

/** Signs a role grant as `signer`, who becomes its issuer. Returns the statement's canonical bytes, which are what replicates. */
export function signRoleGrant(signer: Signer, grant: Omit<RoleGrant, "issuer" | "issuedAt"> & { issuedAt?: number }): Uint8Array {
  const body: RoleGrant = {
    issuer: signer.peerId,
    subject: grant.subject,
    roles: [...new Set(grant.roles)].sort(),
    meshId: grant.meshId,
    issuedAt: grant.issuedAt ?? Date.now(),
    ...(grant.expiresAt === undefined ? {} : { expiresAt: grant.expiresAt }),
  };
  return signStatement(signer, "role-grant", body).bytes;
}

/** Statement id of a signed grant: what a revocation targets. */
export function grantId(bytes: Uint8Array): string {
  return decodeStatement(bytes).id;
}

/** Outcome of offering a grant to the store. */
export interface GrantOutcome {
  /** `accepted`: in force now; `ignored`: authentic but not in force (issuer not an admin, or expired); `rejected`: forged, malformed or for another mesh. */
  status: "accepted" | "ignored" | "rejected";
  reason: string;
  /** Who signed the statement offered, when it could be read. */
  actor?: string;
  grant?: RoleGrant;
}

/** Dependencies of a {@link GrantStore}. */
export interface GrantStoreOptions {
  meshId: string;
  /** Admins by construction: the owner of a personal mesh, the founders of a team mesh. */
  rootAdmins: readonly string[];
  now?: () => number;
}

const EMPTY: ReadonlySet<string> = new Set();

/**
 * Role grants of one mesh, verified offline (ids are self-certifying, so a grant
 * needs nothing but its bytes). Which grants are in force is a fixpoint over the
 * whole set (admins are the roots plus subjects granted `admin` by an admin),
 * recomputed from scratch on every change, so the outcome does not depend on the
 * order grants arrive in.
 */
export class GrantStore {
  readonly #meshId: string;
  readonly #rootAdmins: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #grants = new Map<string, SignedStatement<"role-grant">>();
  /** Revoked grant id -> issuers of revocations targeting it. */
  readonly #revocations = new Map<string, Set<string>>();
  #roles = new Map<string, ReadonlySet<string>>();
  #admins: ReadonlySet<string> = EMPTY;
  #validUntil = Infinity;

  constructor(options: GrantStoreOptions) {
    this.#meshId = options.meshId;
    this.#rootAdmins = new Set(options.rootAdmins);
    this.#now = options.now ?? Date.now;
    this.#recompute();
  }

  /** Verifies and stores a grant. Forged grants are never stored. */
  add(bytes: Uint8Array): GrantOutcome {
    let statement: SignedStatement;
    try {
      statement = decodeStatement(bytes);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const prefix = code === "BAD_SIGNATURE" ? "forged grant" : "malformed grant";
      return { status: "rejected", reason: `${prefix}: ${(err as Error).message}` };
    }
    if (statement.kind !== "role-grant") return { status: "rejected", reason: `malformed grant: statement kind is ${statement.kind}` };
    const grant = statement.body;
    if (grant.meshId !== this.#meshId) return { status: "rejected", reason: `grant is for mesh ${grant.meshId}, not ${this.#meshId}`, actor: grant.issuer, grant };
    this.#grants.set(statement.id, statement);
    this.#recompute();
    const actor = grant.issuer;
    if (this.#isRevoked(statement.id, grant)) return { status: "ignored", reason: "grant was revoked", actor, grant };
    if (grant.expiresAt !== undefined && grant.expiresAt <= this.#now()) return { status: "ignored", reason: "grant expired", actor, grant };
    if (!this.#admins.has(grant.issuer)) return { status: "ignored", reason: `issuer ${grant.issuer} is not an admin of mesh ${this.#meshId}`, actor, grant };
    return { status: "accepted", reason: `${grant.subject} granted ${grant.roles.join(",")} by ${grant.issuer}`, actor, grant };
  }

  /**
   * Applies an identity/ `revocation` statement whose target is a grant's statement
   * id. It takes effect when signed by a root admin or by the grant's own issuer
   * (who may always withdraw what they granted): both are known without the
   * fixpoint, so revocations too are independent of arrival order. A revocation may
   * arrive before its grant and is kept until then.
   */
  addRevocation(bytes: Uint8Array): GrantOutcome {
    let statement: SignedStatement;
    try {
      statement = decodeStatement(bytes);
    } catch (err) {
      const code = (err as { code?: string }).code;
      return { status: "rejected", reason: `${code === "BAD_SIGNATURE" ? "forged" : "malformed"} revocation: ${(err as Error).message}` };
    }
    if (statement.kind !== "revocation") return { status: "rejected", reason: `malformed revocation: statement kind is ${statement.kind}` };
    const { issuer, target } = statement.body;
    let issuers = this.#revocations.get(target);
    if (issuers === undefined) this.#revocations.set(target, (issuers = new Set()));
    issuers.add(issuer);
    this.#recompute();
    const grant = this.#grants.get(target)?.body;
    if (grant === undefined) return { status: "ignored", reason: `no grant ${target} held (yet)`, actor: issuer };
    if (!this.#isRevoked(target, grant)) return { status: "ignored", reason: `${issuer} may not revoke a grant issued by ${grant.issuer}`, actor: issuer, grant };
    return { status: "accepted", reason: `grant of ${grant.roles.join(",")} to ${grant.subject} revoked by ${issuer}`, actor: issuer, grant };
  }

  /** Roles in force for a user or device id (empty when none). */
  rolesOf(subject: string): ReadonlySet<string> {
    if (this.#now() >= this.#validUntil) this.#recompute();
    return this.#roles.get(subject) ?? EMPTY;
  }

  /** True when `subject` is an admin now. */
  isAdmin(subject: string): boolean {
    if (this.#now() >= this.#validUntil) this.#recompute();
    return this.#admins.has(subject);
  }

  /** The grants in force for `subject` now (not revoked, not expired, issued by an admin), with their statement ids. */
  grantsOf(subject: string): Array<{ id: string; grant: RoleGrant }> {
    const now = this.#now();
    const admins = this.#admins;
    return [...this.#grants.values()]
      .filter((s) => s.body.subject === subject && admins.has(s.body.issuer) && !this.#isRevoked(s.id, s.body) && (s.body.expiresAt === undefined || s.body.expiresAt > now))
      .map((s) => ({ id: s.id, grant: s.body }));
  }

  /** True for an admin by construction (the mesh's founder): no revocation of a grant takes that away. */
  isRootAdmin(subject: string): boolean {
    return this.#rootAdmins.has(subject);
  }

  /** Canonical bytes of every authentic grant held, in force or not, for replication. */
  statements(): Uint8Array[] {
    return [...this.#grants.values()].map((s) => s.bytes);
  }

  #isRevoked(id: string, grant: RoleGrant): boolean {
    const issuers = this.#revocations.get(id);
    if (issuers === undefined) return false;
    for (const issuer of issuers) if (issuer === grant.issuer || this.#rootAdmins.has(issuer)) return true;
    return false;
  }

  #recompute(): void {
    const now = this.#now();
    const live = [...this.#grants.values()].filter((s) => !this.#isRevoked(s.id, s.body)).map((s) => s.body).filter((g) => g.expiresAt === undefined || g.expiresAt > now);
    const admins = new Set(this.#rootAdmins);
    // Each pass can only add admins, so it settles within one pass per grant.
    for (let changed = true, passes = 0; changed && passes <= live.length; passes++) {
      changed = false;
      for (const grant of live) {
        if (admins.has(grant.issuer) && grant.roles.includes("admin") && !admins.has(grant.subject)) {
          admins.add(grant.subject);
          changed = true;
        }
      }
    }
    const roles = new Map<string, Set<string>>();
    for (const admin of this.#rootAdmins) roles.set(admin, new Set(["admin"]));
    let validUntil = Infinity;
    for (const grant of live) {
      if (!admins.has(grant.issuer)) continue;
      let set = roles.get(grant.subject);
      if (set === undefined) roles.set(grant.subject, (set = new Set()));
      for (const r of grant.roles) set.add(r);
    }
    // A not-yet-expired grant can still change the outcome when it expires, as can expired ones leaving.
    for (const s of this.#grants.values()) if (s.body.expiresAt !== undefined && s.body.expiresAt > now) validUntil = Math.min(validUntil, s.body.expiresAt);
    this.#roles = roles;
    this.#admins = admins;
    this.#validUntil = validUntil;
  }
}
