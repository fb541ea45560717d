import { randomBytes } from "node:crypto";
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import { isMatch } from "matcher";
import { CoderClawError } from "../contract/errors.js";
import { UnauthenticatedError } from "./errors.js";
import { deviceKeyResolver, verifySignature, type KeyResolver } from "./keys.js";

/** Who a credential proved the caller to be. */
export interface AuthenticatedIdentity {
  userId: string;
  provider: "local" | "oidc" | "github";
  /** Roles the provider's configuration gives this identity, on top of signed grants. */
  roles: string[];
  /** Verified token claims, for the audit trail and the caller's logic. */
  claims?: JWTPayload;
}

/** Turns a credential into an identity, or throws {@link UnauthenticatedError}. */
export interface IdentityProvider<C = unknown> {
  readonly name: string;
  authenticate(credential: C): Promise<AuthenticatedIdentity>;
}

/** A local user's proof of holding their key: a signature over a challenge this node issued. */
export interface LocalCredential {
  userId: string;
  challenge: Uint8Array;
  signature: Uint8Array;
}

// Keeps a login signature from being valid as anything else the user key signs.
const LOCAL_DOMAIN = new TextEncoder().encode("coderclaw-local-login-v1\0");

/** Bytes a local user signs to log in with `challenge`. */
export function localLoginBytes(challenge: Uint8Array): Uint8Array {
  const out = new Uint8Array(LOCAL_DOMAIN.length + challenge.length);
  out.set(LOCAL_DOMAIN);
  out.set(challenge, LOCAL_DOMAIN.length);
  return out;
}

/**
 * `local`: a user key on this device (user ids are key ids, like device ids). The
 * user signs a one-time challenge; roles come from signed grants, where the owner of
 * a personal mesh is a root admin.
 */
export class LocalIdentityProvider implements IdentityProvider<LocalCredential> {
  readonly name = "local";
  readonly #resolveKey: KeyResolver;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #challenges = new Map<string, number>();

  constructor(options: { resolveKey?: KeyResolver; challengeTtlMs?: number; now?: () => number } = {}) {
    this.#resolveKey = options.resolveKey ?? deviceKeyResolver;
    this.#ttlMs = options.challengeTtlMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** A fresh one-time challenge, valid for a minute. */
  challenge(): Uint8Array {
    const now = this.#now();
    for (const [c, expires] of this.#challenges) if (expires <= now) this.#challenges.delete(c);
    const challenge = randomBytes(32);
    this.#challenges.set(challenge.toString("hex"), now + this.#ttlMs);
    return new Uint8Array(challenge);
  }

  async authenticate(credential: LocalCredential): Promise<AuthenticatedIdentity> {
    const hex = Buffer.from(credential.challenge).toString("hex");
    const expires = this.#challenges.get(hex);
    // One use only, whatever the outcome, so a captured login cannot be replayed.
    this.#challenges.delete(hex);
    if (expires === undefined || expires <= this.#now()) throw new UnauthenticatedError("unknown or expired login challenge");
    const key = this.#resolveKey(credential.userId);
    if (key === undefined) throw new UnauthenticatedError(`unknown user key ${credential.userId}`);
    if (!verifySignature(key, localLoginBytes(credential.challenge), credential.signature)) throw new UnauthenticatedError(`login signature of ${credential.userId} does not verify`);
    return { userId: credential.userId, provider: "local", roles: [] };
  }
}

/** Configuration of an {@link OidcIdentityProvider}. */
export interface OidcProviderOptions {
  issuer: string;
  audience: string | string[];
  /** Where the issuer publishes its JSON Web Key Set. */
  jwksUrl: string | URL;
  /** Claim holding the user's id; `sub` by default. */
  userIdClaim?: string;
  /** Claim holding group or role names (a string or an array of strings). */
  rolesClaim?: string;
  /** Maps values of `rolesClaim` to CoderClaw roles; values not listed grant nothing. */
  roleMap?: Record<string, string[]>;
  /** Accepted signature algorithms. */
  algorithms?: string[];
  /** Seconds of clock skew tolerated on `exp` and `nbf`. */
  clockToleranceSec?: number;
}

const DEFAULT_ALGORITHMS = ["RS256", "ES256", "EdDSA"];

/** Verifies a JWT's signature (against the issuer's JWKS), issuer, audience and time claims with jose. */
async function verifyJwt(token: string, jwks: ReturnType<typeof createRemoteJWKSet>, options: { issuer: string; audience: string | string[]; algorithms?: string[]; clockToleranceSec?: number }): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(token, jwks, {
      issuer: options.issuer,
      audience: options.audience,
      algorithms: options.algorithms ?? DEFAULT_ALGORITHMS,
      clockTolerance: options.clockToleranceSec ?? 30,
      requiredClaims: ["exp", "iat"],
    });
    return payload;
  } catch (err) {
    const code = (err as { code?: string }).code ?? "ERR_UNKNOWN";
    throw new UnauthenticatedError(`${code}: ${(err as Error).message}`);
  }
}

/** `oidc`: JWTs from an OpenID Connect issuer. The user id is `oidc:<issuer>#<user id claim>`. */
export class OidcIdentityProvider implements IdentityProvider<string> {
  readonly name = "oidc";
  readonly #options: OidcProviderOptions;
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(options: OidcProviderOptions) {
    this.#options = options;
    this.#jwks = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 5_000 });
  }

  async authenticate(token: string): Promise<AuthenticatedIdentity> {
    const claims = await verifyJwt(token, this.#jwks, this.#options);
    const id = claims[this.#options.userIdClaim ?? "sub"];
    if (typeof id !== "string" || id === "") throw new UnauthenticatedError(`token has no ${this.#options.userIdClaim ?? "sub"} claim`);
    const roles = new Set<string>();
    const raw = this.#options.rolesClaim === undefined ? undefined : claims[this.#options.rolesClaim];
    const values = typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw.filter((v): v is string => typeof v === "string") : [];
    for (const value of values) for (const role of this.#options.roleMap?.[value] ?? []) roles.add(role);
    return { userId: `oidc:${this.#options.issuer}#${id}`, provider: "oidc", roles: [...roles].sort(), claims };
  }
}

/** The issuer of GitHub Actions OIDC tokens. */
export const GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com";

/**
 * Maps GitHub Actions token claims to an identity. Each given field must match;
 * `*` matches any run of characters, `/` included (`refs/heads/*`), everything
 * else is literal (matched by `matcher`); a pattern may not start with `!`.
 */
export interface GitHubRule {
  repository: string;
  /** Matched against the `workflow` claim (the workflow's name). */
  workflow?: string;
  /** Matched against `job_workflow_ref` (`owner/repo/.github/workflows/x.yml@refs/heads/main`). */
  jobWorkflowRef?: string;
  ref?: string;
  /** The user id sessions of matching tokens get. */
  identity: string;
  roles: string[];
}

/** Configuration of a {@link GitHubActionsIdentityProvider}. */
export interface GitHubProviderOptions {
  /** The audience the workflow requested (`core.getIDToken(audience)`). */
  audience: string;
  rules: GitHubRule[];
  /** Overridable so tests and GitHub Enterprise can point elsewhere. */
  issuer?: string;
  jwksUrl?: string | URL;
  clockToleranceSec?: number;
}

/**
 * `github`: GitHub Actions OIDC tokens. A token is accepted only when at least one
 * rule matches its `repository`, `workflow`/`job_workflow_ref` and `ref` claims; all
 * matching rules must name the same identity, and their roles are combined, so the
 * order of rules never matters.
 */
export class GitHubActionsIdentityProvider implements IdentityProvider<string> {
  readonly name = "github";
  readonly #options: GitHubProviderOptions & { issuer: string };
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;
  readonly #rules: Array<{ rule: GitHubRule; test: (claims: JWTPayload) => boolean }>;

  constructor(options: GitHubProviderOptions) {
    const issuer = options.issuer ?? GITHUB_ACTIONS_ISSUER;
    this.#options = { ...options, issuer };
    this.#jwks = createRemoteJWKSet(new URL(options.jwksUrl ?? `${issuer}/.well-known/jwks`), { timeoutDuration: 5_000 });
    this.#rules = options.rules.map((rule) => {
      const checks: Array<[string, string]> = [["repository", rule.repository]];
      if (rule.workflow !== undefined) checks.push(["workflow", rule.workflow]);
      if (rule.jobWorkflowRef !== undefined) checks.push(["job_workflow_ref", rule.jobWorkflowRef]);
      if (rule.ref !== undefined) checks.push(["ref", rule.ref]);
      for (const [claim, pattern] of checks) {
        // matcher reads a leading "!" as "anything but": a rule that admits every other repository is never what was meant.
        if (pattern.startsWith("!")) throw new CoderClawError("INVALID_INPUT", `GitHub rule for ${rule.identity}: ${claim} pattern ${JSON.stringify(pattern)} may not start with "!"`, { field: "rules" });
      }
      return { rule, test: (claims) => checks.every(([claim, pattern]) => typeof claims[claim] === "string" && isMatch(claims[claim], pattern, { caseSensitive: true })) };
    });
  }

  async authenticate(token: string): Promise<AuthenticatedIdentity> {
    const claims = await verifyJwt(token, this.#jwks, { issuer: this.#options.issuer, audience: this.#options.audience, algorithms: ["RS256"], ...(this.#options.clockToleranceSec === undefined ? {} : { clockToleranceSec: this.#options.clockToleranceSec }) });
    const matches = this.#rules.filter((r) => r.test(claims)).map((r) => r.rule);
    const describe = `repository ${String(claims.repository)} workflow ${String(claims.workflow)} ref ${String(claims.ref)}`;
    if (matches.length === 0) throw new UnauthenticatedError(`no GitHub rule matches ${describe}`);
    const identities = new Set(matches.map((m) => m.identity));
    if (identities.size > 1) throw new UnauthenticatedError(`GitHub rules disagree on the identity for ${describe}: ${[...identities].sort().join(", ")}`);
    const roles = [...new Set(matches.flatMap((m) => m.roles))].sort();
    return { userId: matches[0]?.identity as string, provider: "github", roles, claims };
  }
}
