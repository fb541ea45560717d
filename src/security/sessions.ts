import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import { fromBase64Url, toBase64Url } from "../../identity/bytes.js";
import { canonicalDecode, canonicalEncode } from "./canonical.js";
import { PermissionDeniedError } from "./errors.js";
import { publicKeyOfDeviceId } from "../../identity/device-id.js";
import { verifySignature, type Signer } from "./keys.js";
import type { SessionPersistence, StoredSession } from "./session-file.js";

/** A live session and its bearer token. */
export interface Session {
  id: string;
  userId: string;
  deviceId: string;
  roles: readonly string[];
  /** Bearer token: `cc1.<claims>.<signature>`, base64url. */
  token: string;
  issuedAt: number;
  expiresAt: number;
  /** A read-only session may only read (HTTP: GET routes). */
  readOnly: boolean;
}

/** What {@link SessionManager.list} tells of a session; never its token. */
export interface SessionSummary {
  id: string;
  userId: string;
  deviceId: string;
  roles: readonly string[];
  readOnly: boolean;
  issuedAt: number;
  expiresAt: number;
  state: "active" | "expired" | "revoked";
  revokedBecause?: string;
}

/** Claims inside a session token (canonical CBOR, signed by the issuing node). */
export interface SessionClaims {
  v: 1;
  sid: string;
  sub: string;
  dev: string;
  roles: string[];
  mesh: string;
  iss: string;
  iat: number;
  exp: number;
  /** Rotation generation: only the newest token of a session is accepted. */
  gen: number;
}

/** Result of checking a token. */
export type TokenCheck = { ok: true; session: Session } | { ok: false; reason: string; sessionId?: string; userId?: string };

/** Dependencies of a {@link SessionManager}. */
export interface SessionManagerOptions {
  /** This node's key; it signs tokens, and only tokens it signed are accepted. */
  signer: Signer;
  meshId: string;
  /** Roles currently granted to a user and device by signed grants. */
  grantedRoles: (userId: string, deviceId: string) => ReadonlySet<string>;
  ttlMs?: number;
  now?: () => number;
  /** Where sessions outlive a restart; without it they live in memory only. */
  persistence?: SessionPersistence;
}

const PREFIX = "cc1";
// Keeps a session signature from ever being valid as a statement or audit entry signature.
const DOMAIN = new TextEncoder().encode("coderclaw-session-v1\0");
const MAX_TOKEN_LENGTH = 4096;
/** How long an expired session stays listed (and known as ended) before it is forgotten. */
const EXPIRED_KEPT_MS = 24 * 3600_000;

/**
 * Sessions with signed, expiring bearer tokens.
 *
 * Tokens are a compact CoderClaw format rather than JWTs: only CoderClaw nodes mint
 * and read them, so there is no interoperability to gain, while this format has no
 * `alg` header to negotiate (no algorithm confusion), verifies synchronously on the
 * hot path with the cached node:crypto key, and uses the same canonical CBOR and
 * Ed25519 as every other signed thing in the mesh, with its own domain tag.
 *
 * Session state (generation, expiry, revocation, scope and the SHA-256 of the
 * newest token) is kept by this node, in its home when given a persistence, so
 * sessions survive a restart; a token whose hash is not the one kept is refused.
 * Every change is durable before the call that made it resolves: a revocation
 * that was answered holds after any crash. A token for a session this node does
 * not know is refused, so forgetting fails closed.
 */
export class SessionManager {
  readonly #signer: Signer;
  readonly #meshId: string;
  readonly #grantedRoles: (userId: string, deviceId: string) => ReadonlySet<string>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #sessions = new Map<string, StoredSession>();
  readonly #persistence: SessionPersistence | undefined;

  constructor(options: SessionManagerOptions) {
    this.#signer = options.signer;
    this.#meshId = options.meshId;
    this.#grantedRoles = options.grantedRoles;
    this.#ttlMs = options.ttlMs ?? 60 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#persistence = options.persistence;
    // Sessions of another mesh could never verify here (the mesh is in their claims).
    for (const stored of options.persistence?.saved() ?? []) if (stored.meshId === this.#meshId) this.#sessions.set(stored.id, { ...stored });
  }

  /**
   * Opens a session holding `roles`. Throws {@link PermissionDeniedError} when a role
   * is neither granted to the user or device nor given by the identity provider.
   */
  async createSession(userId: string, deviceId: string, roles: readonly string[], options: { providerRoles?: readonly string[]; ttlMs?: number; readOnly?: boolean } = {}): Promise<Session> {
    const providerRoles = [...new Set(options.providerRoles ?? [])].sort();
    const allowed = this.#allowed(userId, deviceId, providerRoles);
    const excess = [...new Set(roles)].filter((r) => !allowed.has(r)).sort();
    if (excess.length > 0) throw new PermissionDeniedError(`${userId} is not granted role(s) ${excess.join(",")}`);
    if (roles.length === 0) throw new PermissionDeniedError(`a session needs at least one role`);
    const now = this.#now();
    const id = randomUUID();
    const record: StoredSession = { id, meshId: this.#meshId, userId, deviceId, roles: [...new Set(roles)].sort(), providerRoles, gen: 1, issuedAt: now, expiresAt: now + (options.ttlMs ?? this.#ttlMs), tokenHash: "", readOnly: options.readOnly === true };
    const session = this.#mint(record, now);
    this.#sessions.set(id, record);
    await this.#save();
    return session;
  }

  /** Every session this node keeps (until a day past its expiry), newest first. */
  list(): SessionSummary[] {
    const now = this.#now();
    return [...this.#sessions.values()]
      .sort((a, b) => b.issuedAt - a.issuedAt)
      .map((r) => ({
        id: r.id,
        userId: r.userId,
        deviceId: r.deviceId,
        roles: r.roles,
        readOnly: r.readOnly,
        issuedAt: r.issuedAt,
        expiresAt: r.expiresAt,
        state: r.revoked !== undefined ? "revoked" : r.expiresAt <= now ? "expired" : "active",
        ...(r.revoked !== undefined && { revokedBecause: r.revoked }),
      }));
  }

  /**
   * Checks a token: format, this node's signature, mesh, expiry, that the session is
   * known and not revoked, that it is the newest token of the session (rotation), and
   * that `deviceId`, when given, is the device the session was opened for. The
   * returned roles are those still granted now.
   */
  verify(token: string, deviceId?: string): TokenCheck {
    const parsed = this.#parse(token);
    if ("reason" in parsed) return parsed;
    const { claims } = parsed;
    const who = { sessionId: claims.sid, userId: claims.sub };
    const now = this.#now();
    if (claims.exp <= now) return { ok: false, reason: `session token expired at ${new Date(claims.exp).toISOString()}`, ...who };
    const record = this.#sessions.get(claims.sid);
    if (record === undefined) return { ok: false, reason: `unknown session ${claims.sid}`, ...who };
    if (record.revoked !== undefined) return { ok: false, reason: `session ${claims.sid} was revoked (${record.revoked}); token replayed`, ...who };
    if (claims.gen !== record.gen) return { ok: false, reason: `session ${claims.sid} token was rotated; superseded token replayed`, ...who };
    if (!sameHash(record.tokenHash, hashToken(token))) return { ok: false, reason: `session ${claims.sid} has no such token`, ...who };
    if (record.expiresAt <= now) return { ok: false, reason: `session ${claims.sid} expired`, ...who };
    if (deviceId !== undefined && deviceId !== claims.dev) return { ok: false, reason: `session ${claims.sid} belongs to device ${claims.dev}, presented by ${deviceId}`, ...who };
    const allowed = this.#allowed(record.userId, record.deviceId, record.providerRoles);
    const roles = claims.roles.filter((r) => allowed.has(r));
    return { ok: true, session: { id: claims.sid, userId: claims.sub, deviceId: claims.dev, roles, token, issuedAt: claims.iat, expiresAt: claims.exp, readOnly: record.readOnly } };
  }

  /** Replaces a valid token with a fresh one (new expiry); the old token stops working. */
  async rotate(token: string): Promise<TokenCheck> {
    const check = this.verify(token);
    if (!check.ok) return check;
    const record = this.#sessions.get(check.session.id) as StoredSession;
    const now = this.#now();
    record.gen++;
    record.expiresAt = now + this.#ttlMs;
    const session = this.#mint(record, now, [...check.session.roles]);
    await this.#save();
    return { ok: true, session };
  }

  /** Revokes a session; its tokens are refused from now on, and after a restart once this resolves. Returns false when unknown. */
  async revoke(sessionId: string, reason: string): Promise<boolean> {
    const record = this.#sessions.get(sessionId);
    if (record === undefined) return false;
    record.revoked ??= reason;
    await this.#save();
    return true;
  }

  /** Revokes every session opened for a device; returns their ids. */
  async revokeDevice(deviceId: string, reason: string): Promise<string[]> {
    const ids: string[] = [];
    for (const [id, record] of this.#sessions) {
      if (record.deviceId === deviceId && record.revoked === undefined) {
        record.revoked = reason;
        ids.push(id);
      }
    }
    if (ids.length > 0) await this.#save();
    return ids;
  }

  /** True for a session this node opened that has since been revoked or has expired; false for sessions it does not know. */
  hasEnded(sessionId: string): boolean {
    const record = this.#sessions.get(sessionId);
    return record !== undefined && (record.revoked !== undefined || record.expiresAt <= this.#now());
  }

  #allowed(userId: string, deviceId: string, providerRoles: readonly string[]): Set<string> {
    return new Set([...this.#grantedRoles(userId, deviceId), ...providerRoles]);
  }

  /** Signs a token for the record's current generation and keeps its hash in the record. */
  #mint(record: StoredSession, now: number, roles: string[] = record.roles): Session {
    const claims: SessionClaims = { v: 1, sid: record.id, sub: record.userId, dev: record.deviceId, roles, mesh: this.#meshId, iss: this.#signer.peerId, iat: now, exp: record.expiresAt, gen: record.gen };
    const bytes = canonicalEncode(claims);
    const sig = this.#signer.sign(concat(DOMAIN, bytes));
    const token = `${PREFIX}.${toBase64Url(bytes)}.${toBase64Url(sig)}`;
    record.tokenHash = hashToken(token);
    return { id: record.id, userId: record.userId, deviceId: record.deviceId, roles, token, issuedAt: now, expiresAt: record.expiresAt, readOnly: record.readOnly };
  }

  // A session expired a while ago can never be used again (its tokens expire with it); it is kept for a
  // grace period only so that a context built before its expiry is still refused as ended.
  async #save(): Promise<void> {
    const now = this.#now();
    for (const [id, record] of this.#sessions) if (record.expiresAt + EXPIRED_KEPT_MS <= now) this.#sessions.delete(id);
    await this.#persistence?.save([...this.#sessions.values()]);
  }

  #parse(token: string): { claims: SessionClaims } | { ok: false; reason: string } {
    const parsed = parseToken(token);
    if ("reason" in parsed) return parsed;
    const { claims, bytes, sig } = parsed;
    if (claims.iss !== this.#signer.peerId) return { ok: false, reason: `session token issued by ${claims.iss}, not by this node` };
    if (!verifySignature(this.#signer.publicKey, concat(DOMAIN, bytes), sig)) return { ok: false, reason: "session token signature does not verify" };
    if (claims.mesh !== this.#meshId) return { ok: false, reason: `session token is for mesh ${claims.mesh}, not ${this.#meshId}` };
    return { claims };
  }
}

/**
 * Checks a session token minted by another node of the mesh, for the node that
 * executes a task on its behalf: the issuer's signature (its key is in its device
 * id), the mesh, the expiry, and that the issuer is the peer relaying it. Session
 * state (rotation, revocation) lives on the issuer, so it cannot be checked here:
 * short token lifetimes and device revocation bound the exposure, and the caller
 * must still cut the claimed roles down to grants it holds itself.
 */
export function verifyPeerSessionToken(token: string, expected: { meshId: string; issuer: string; now: number }): { ok: true; claims: SessionClaims } | { ok: false; reason: string; sessionId?: string; userId?: string } {
  const parsed = parseToken(token);
  if ("reason" in parsed) return parsed;
  const { claims, bytes, sig } = parsed;
  const who = { sessionId: claims.sid, userId: claims.sub };
  if (claims.iss !== expected.issuer) return { ok: false, reason: `session token issued by ${claims.iss}, relayed by ${expected.issuer}`, ...who };
  const key = publicKeyOfDeviceId(claims.iss);
  if (key === undefined || !verifySignature(key, concat(DOMAIN, bytes), sig)) return { ok: false, reason: "session token signature does not verify", ...who };
  if (claims.mesh !== expected.meshId) return { ok: false, reason: `session token is for mesh ${claims.mesh}, not ${expected.meshId}`, ...who };
  if (claims.exp <= expected.now) return { ok: false, reason: `session token expired at ${new Date(claims.exp).toISOString()}`, ...who };
  return { ok: true, claims };
}

function parseToken(token: string): { claims: SessionClaims; bytes: Uint8Array; sig: Uint8Array } | { ok: false; reason: string } {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "malformed session token" };
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== PREFIX) return { ok: false, reason: "malformed session token" };
  const bytes = fromBase64Url(parts[1] as string);
  const sig = fromBase64Url(parts[2] as string);
  if (bytes === undefined || sig === undefined) return { ok: false, reason: "malformed session token" };
  try {
    return { claims: asClaims(canonicalDecode(bytes)), bytes, sig };
  } catch {
    return { ok: false, reason: "malformed session token" };
  }
}

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function asClaims(value: unknown): SessionClaims {
  const v = value as { [k: string]: unknown };
  const strings = ["sid", "sub", "dev", "mesh", "iss"] as const;
  if (typeof v !== "object" || v === null || v.v !== 1) throw new TypeError("bad claims");
  for (const k of strings) if (typeof v[k] !== "string") throw new TypeError(`bad claim ${k}`);
  for (const k of ["iat", "exp", "gen"] as const) if (!Number.isSafeInteger(v[k])) throw new TypeError(`bad claim ${k}`);
  if (!Array.isArray(v.roles) || !v.roles.every((r) => typeof r === "string")) throw new TypeError("bad claim roles");
  return v as unknown as SessionClaims;
}
