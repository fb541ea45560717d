import { createHash } from "node:crypto";
import { canonicalDecode, canonicalEncode } from "./canonical.js";
import { verifySignature, type KeyResolver, type Signer } from "./keys.js";

/** The signed claim that `subject` (a user id or device id) holds `roles` in `meshId`. */
export interface RoleGrant {
  kind: "role-grant";
  /** Id of the admin who signed the grant. */
  issuer: string;
  subject: string;
  roles: string[];
  meshId: string;
  /** Milliseconds since the epoch. */
  issuedAt: number;
  expiresAt?: number;
}

/** A statement as it travels and is stored: its canonical bytes and the issuer's signature over them. */
export interface SignedStatement {
  bytes: Uint8Array;
  sig: Uint8Array;
}

/** Signs a role grant; the signer's id becomes the issuer. */
export function signRoleGrant(signer: Signer, grant: Omit<RoleGrant, "kind" | "issuer" | "issuedAt"> & { issuedAt?: number }): SignedStatement {
  const statement: RoleGrant = {
    kind: "role-grant",
    issuer: signer.id,
    subject: grant.subject,
    roles: [...grant.roles].sort(),
    meshId: grant.meshId,
    issuedAt: grant.issuedAt ?? Date.now(),
    ...(grant.expiresAt === undefined ? {} : { expiresAt: grant.expiresAt }),
  };
  const bytes = canonicalEncode(statement);
  return { bytes, sig: signer.sign(bytes) };
}

/** Outcome of offering a grant to the store. */
export interface GrantOutcome {
  /** `accepted`: in force now; `ignored`: authentic but its issuer is not an admin (it counts if the issuer becomes one); `rejected`: forged, malformed or for another mesh. */
  status: "accepted" | "ignored" | "rejected";
  reason: string;
  grant?: RoleGrant;
}

interface StoredGrant {
  grant: RoleGrant;
  id: string;
}

/** Dependencies of a {@link GrantStore}. */
export interface GrantStoreOptions {
  meshId: string;
  /** Admins by construction: the owner of a personal mesh, the founders of a team mesh. */
  rootAdmins: readonly string[];
  resolveKey: KeyResolver;
  now?: () => number;
}

/**
 * Role grants of one mesh, verified offline. Which grants are in force is a fixpoint
 * over the whole set (admins are the roots plus subjects granted `admin` by an
 * admin), recomputed from scratch on every change, so the outcome does not depend on
 * the order in which grants arrive.
 */
export class GrantStore {
  readonly #meshId: string;
  readonly #rootAdmins: ReadonlySet<string>;
  readonly #resolveKey: KeyResolver;
  readonly #now: () => number;
  readonly #grants = new Map<string, StoredGrant>();
  #roles = new Map<string, ReadonlySet<string>>();
  #admins: ReadonlySet<string> = new Set();
  #validUntil = Infinity;

  constructor(options: GrantStoreOptions) {
    this.#meshId = options.meshId;
    this.#rootAdmins = new Set(options.rootAdmins);
    this.#resolveKey = options.resolveKey;
    this.#now = options.now ?? Date.now;
    this.#recompute();
  }

  /** Verifies and stores a grant. Forged grants are never stored. */
  add(statement: SignedStatement): GrantOutcome {
    const checked = this.#check(statement);
    if ("reason" in checked) return { status: "rejected", reason: checked.reason };
    const { grant, id } = checked;
    this.#grants.set(id, { grant, id });
    this.#recompute();
    const now = this.#now();
    if (grant.expiresAt !== undefined && grant.expiresAt <= now) return { status: "ignored", reason: "grant expired", grant };
    if (!this.#admins.has(grant.issuer)) return { status: "ignored", reason: `issuer ${grant.issuer} is not an admin of mesh ${this.#meshId}`, grant };
    return { status: "accepted", reason: `${grant.subject} granted ${grant.roles.join(",")} by ${grant.issuer}`, grant };
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

  /** Authentic grants held, whether in force or not (for replication). */
  get size(): number {
    return this.#grants.size;
  }

  #check(statement: SignedStatement): StoredGrant | { reason: string } {
    let decoded: unknown;
    try {
      decoded = canonicalDecode(statement.bytes);
    } catch (err) {
      return { reason: `malformed grant: ${(err as Error).message}` };
    }
    const grant = asRoleGrant(decoded);
    if (grant === undefined) return { reason: "malformed grant: not a role-grant statement" };
    if (grant.meshId !== this.#meshId) return { reason: `grant is for mesh ${grant.meshId}, not ${this.#meshId}` };
    const key = this.#resolveKey(grant.issuer);
    if (key === undefined) return { reason: `forged grant: unknown issuer key ${grant.issuer}` };
    if (!verifySignature(key, statement.bytes, statement.sig)) return { reason: `forged grant: bad signature for issuer ${grant.issuer}` };
    return { grant, id: createHash("sha256").update(statement.bytes).digest("hex") };
  }

  #recompute(): void {
    const now = this.#now();
    const live = [...this.#grants.values()].filter((g) => g.grant.expiresAt === undefined || g.grant.expiresAt > now);
    const admins = new Set(this.#rootAdmins);
    // Each pass can only add admins, so it ends after at most one pass per grant.
    for (let changed = true, passes = 0; changed && passes <= live.length; passes++) {
      changed = false;
      for (const { grant } of live) {
        if (admins.has(grant.issuer) && grant.roles.includes("admin") && !admins.has(grant.subject)) {
          admins.add(grant.subject);
          changed = true;
        }
      }
    }
    const roles = new Map<string, Set<string>>();
    for (const admin of this.#rootAdmins) roles.set(admin, new Set(["admin"]));
    let validUntil = Infinity;
    for (const { grant } of live) {
      if (!admins.has(grant.issuer)) continue;
      let set = roles.get(grant.subject);
      if (set === undefined) roles.set(grant.subject, (set = new Set()));
      for (const r of grant.roles) set.add(r);
      if (grant.expiresAt !== undefined) validUntil = Math.min(validUntil, grant.expiresAt);
    }
    this.#roles = roles;
    this.#admins = admins;
    this.#validUntil = validUntil;
  }
}

const EMPTY: ReadonlySet<string> = new Set();

function asRoleGrant(value: unknown): RoleGrant | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const allowed = new Set(["kind", "issuer", "subject", "roles", "meshId", "issuedAt", "expiresAt"]);
  if (Object.keys(v).some((k) => !allowed.has(k))) return undefined;
  if (v.kind !== "role-grant" || typeof v.issuer !== "string" || typeof v.subject !== "string" || typeof v.meshId !== "string") return undefined;
  if (!Array.isArray(v.roles) || !v.roles.every((r) => typeof r === "string")) return undefined;
  if (typeof v.issuedAt !== "number" || (v.expiresAt !== undefined && typeof v.expiresAt !== "number")) return undefined;
  return {
    kind: "role-grant",
    issuer: v.issuer,
    subject: v.subject,
    roles: v.roles as string[],
    meshId: v.meshId,
    issuedAt: v.issuedAt,
    ...(v.expiresAt === undefined ? {} : { expiresAt: v.expiresAt as number }),
  };
}
