import { randomUUID } from "node:crypto";
import { fromBase64Url, toBase64Url } from "../../identity/bytes.js";
import { canonicalDecode, canonicalEncode } from "./canonical.js";
import { PermissionDeniedError } from "./errors.js";
import { publicKeyOfDeviceId } from "../../identity/device-id.js";
import { verifySignature, type Signer } from "./keys.js";

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

interface Record {
  userId: string;
  deviceId: string;
  /** Roles granted by the identity provider at login, on top of signed grants. */
  providerRoles: ReadonlySet<string>;
  gen: number;
  expiresAt: number;
  revoked?: string;
}

/** Dependencies of a {@link SessionManager}. */
export interface SessionManagerOptions {
  /** This node's key; it signs tokens, and only tokens it signed are accepted. */
  signer: Signer;
  meshId: string;
  /** Roles currently granted to a user and device by signed grants. */
  grantedRoles: (userId: string, deviceId: string) => ReadonlySet<string>;
  ttlMs?: number;
  now?: () => number;
}

const PREFIX = "cc1";
// Keeps a session signature from ever being valid as a statement or audit entry signature.
const DOMAIN = new TextEncoder().encode("coderclaw-session-v1\0");
const MAX_TOKEN_LENGTH = 4096;

/**
 * Sessions with signed, expiring bearer tokens.
 *
 * Tokens are a compact CoderClaw format rather than JWTs: only CoderClaw nodes mint
 * and read them, so there is no interoperability to gain, while this format has no
 * `alg` header to negotiate (no algorithm confusion), verifies synchronously on the
 * hot path with the cached node:crypto key, and uses the same canonical CBOR and
 * Ed25519 as every other signed thing in the mesh, with its own domain tag.
 *
 * Session state (generation, revocation) lives in this node's memory: a token for
 * a session this node does not know, e.g. after a restart, is refused, so
 * forgetting fails closed.
 */
export class SessionManager {
  readonly #signer: Signer;
  readonly #meshId: string;
  readonly #grantedRoles: (userId: string, deviceId: string) => ReadonlySet<string>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #sessions = new Map<string, Record>();

  constructor(options: SessionManagerOptions) {
    this.#signer = options.signer;
    this.#meshId = options.meshId;
    this.#grantedRoles = options.grantedRoles;
    this.#ttlMs = options.ttlMs ?? 60 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Opens a session holding `roles`. Throws {@link PermissionDeniedError} when a role
   * is neither granted to the user or device nor given by the identity provider.
   */
  createSession(userId: string, deviceId: string, roles: readonly string[], options: { providerRoles?: readonly string[]; ttlMs?: number } = {}): Session {
    const providerRoles = new Set(options.providerRoles ?? []);
    const allowed = this.#allowed(userId, deviceId, providerRoles);
    const excess = [...new Set(roles)].filter((r) => !allowed.has(r)).sort();
    if (excess.length > 0) throw new PermissionDeniedError(`${userId} is not granted role(s) ${excess.join(",")}`);
    if (roles.length === 0) throw new PermissionDeniedError(`a session needs at least one role`);
    const now = this.#now();
    const record: Record = { userId, deviceId, providerRoles, gen: 1, expiresAt: now + (options.ttlMs ?? this.#ttlMs) };
    const id = randomUUID();
    this.#sessions.set(id, record);
    this.#prune(now);
    return this.#mint(id, record, [...new Set(roles)].sort(), now);
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
    if (record.expiresAt <= now) return { ok: false, reason: `session ${claims.sid} expired`, ...who };
    if (deviceId !== undefined && deviceId !== claims.dev) return { ok: false, reason: `session ${claims.sid} belongs to device ${claims.dev}, presented by ${deviceId}`, ...who };
    const allowed = this.#allowed(record.userId, record.deviceId, record.providerRoles);
    const roles = claims.roles.filter((r) => allowed.has(r));
    return { ok: true, session: { id: claims.sid, userId: claims.sub, deviceId: claims.dev, roles, token, issuedAt: claims.iat, expiresAt: claims.exp } };
  }

  /** Replaces a valid token with a fresh one (new expiry); the old token stops working. */
  rotate(token: string): TokenCheck {
    const check = this.verify(token);
    if (!check.ok) return check;
    const record = this.#sessions.get(check.session.id) as Record;
    const now = this.#now();
    record.gen++;
    record.expiresAt = now + this.#ttlMs;
    return { ok: true, session: this.#mint(check.session.id, record, [...check.session.roles], now) };
  }

  /** Revokes a session; its tokens are refused from now on. Returns false when unknown. */
  revoke(sessionId: string, reason: string): boolean {
    const record = this.#sessions.get(sessionId);
    if (record === undefined) return false;
    record.revoked ??= reason;
    return true;
  }

  /** Revokes every session opened for a device; returns their ids. */
  revokeDevice(deviceId: string, reason: string): string[] {
    const ids: string[] = [];
    for (const [id, record] of this.#sessions) {
      if (record.deviceId === deviceId && record.revoked === undefined) {
        record.revoked = reason;
        ids.push(id);
      }
    }
    return ids;
  }

  /** True for a session this node opened that has since been revoked or has expired; false for sessions it does not know. */
  hasEnded(sessionId: string): boolean {
    const record = this.#sessions.get(sessionId);
    return record !== undefined && (record.revoked !== undefined || record.expiresAt <= this.#now());
  }

  #allowed(userId: string, deviceId: string, providerRoles: ReadonlySet<string>): Set<string> {
    return new Set([...this.#grantedRoles(userId, deviceId), ...providerRoles]);
  }

  #mint(id: string, record: Record, roles: string[], now: number): Session {
    const claims: SessionClaims = { v: 1, sid: id, sub: record.userId, dev: record.deviceId, roles, mesh: this.#meshId, iss: this.#signer.peerId, iat: now, exp: record.expiresAt, gen: record.gen };
    const bytes = canonicalEncode(claims);
    const sig = this.#signer.sign(concat(DOMAIN, bytes));
    const token = `${PREFIX}.${toBase64Url(bytes)}.${toBase64Url(sig)}`;
    return { id, userId: record.userId, deviceId: record.deviceId, roles, token, issuedAt: now, expiresAt: record.expiresAt };
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

  // Expired sessions cannot be used again, so their records only cost memory.
  #prune(now: number): void {
    if (this.#sessions.size % 256 !== 0) return;
    for (const [id, record] of this.#sessions) if (record.expiresAt <= now) this.#sessions.delete(id);
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
