import { createHash } from "node:crypto";
import type { SecurityContext } from "../../src/security/context.js";
import { UnauthenticatedError } from "../../src/security/errors.js";
import { GITHUB_ACTIONS_ISSUER } from "../../src/security/providers.js";
import type { SecurityService } from "../../src/security/service.js";
import type { Session } from "../../src/security/sessions.js";
import type { AccessDecision, HttpServerOptions } from "./server.js";

/** Options of {@link securityHttpHooks}. */
export interface SecurityHttpOptions {
  /**
   * The device HTTP sessions belong to: this node's own device id. HTTP has no
   * device proof on the connection, so a session token is only accepted here when
   * it was opened for this device; a token minted for a laptop's mesh use cannot be
   * replayed over HTTP.
   */
  deviceId: string;
  /**
   * Identity provider (by name, as registered with the service) for JWTs of each
   * issuer. Default: GitHub Actions tokens go to `github`, any other issuer to `oidc`.
   */
  providerForIssuer?: (issuer: string) => string | undefined;
  /**
   * JWT logins remembered so one CI job's requests share a session. A remembered
   * JWT keeps working until its session expires, even past its own `exp`, so a long
   * task's stream can reconnect; a JWT is only ever verified once. Default 1,000.
   */
  maxCachedLogins?: number;
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function unverifiedIssuer(jwt: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as { iss?: unknown };
    return typeof payload.iss === "string" ? payload.iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Wires the security service into the HTTP server: bearer tokens are either
 * session tokens (`cc1.…`) or OIDC JWTs (GitHub Actions, or a configured OIDC
 * issuer) exchanged for a session through the service's identity providers; every
 * action goes through the service's audited checks, and listings use its pure
 * session-isolation check.
 *
 * @example
 * ```ts
 * const server = await createHttpServer({ adapter, ...securityHttpHooks(security, { deviceId: node.peerId }) });
 * ```
 */
export function securityHttpHooks(
  service: SecurityService,
  options: SecurityHttpOptions,
): Required<Pick<HttpServerOptions<SecurityContext>, "authenticate" | "checkWrite" | "authorize" | "canReadTask" | "sessionIdOf" | "subjectOf" | "audit" | "permissionsOf">> {
  const providerFor =
    options.providerForIssuer ?? ((issuer: string) => (issuer === GITHUB_ACTIONS_ISSUER ? "github" : "oidc"));
  const maxLogins = options.maxCachedLogins ?? 1000;
  // Keyed by a hash of the JWT so the cache never holds the credential itself.
  const logins = new Map<string, Session>();

  const exchange = async (jwt: string): Promise<string> => {
    const key = createHash("sha256").update(jwt).digest("base64url");
    const cached = logins.get(key);
    if (cached !== undefined && cached.expiresAt > Date.now()) return cached.token;
    logins.delete(key);
    const issuer = unverifiedIssuer(jwt);
    const provider = issuer === undefined ? undefined : providerFor(issuer);
    if (provider === undefined) throw new UnauthenticatedError("token is neither a session token nor a JWT from a known issuer");
    const session = await service.login(provider, jwt, options.deviceId);
    if (logins.size >= maxLogins) logins.delete(logins.keys().next().value as string);
    logins.set(key, session);
    return session.token;
  };

  const allow = (decision: { allowed: boolean; reason: string }): AccessDecision => ({ allowed: decision.allowed, reason: decision.reason });

  return {
    authenticate: async (token) => {
      const sessionToken = !token.startsWith("cc1.") && JWT.test(token) ? await exchange(token) : token;
      return service.authenticate(sessionToken, { deviceId: options.deviceId, origin: "http" });
    },

    checkWrite: (ctx, what) => service.checkWrite(ctx, what),

    authorize: async (ctx, action, resource) => {
      switch (action) {
        case "task:submit": {
          if (resource.type === "task" && resource.sessionId !== undefined && resource.sessionId !== ctx.sessionId) {
            const into = await service.authorizeTaskRead(ctx, { id: "(new task)", sessionId: resource.sessionId }, "task.submit");
            if (!into.allowed) return allow(into);
          }
          const agentId = resource.type === "task" ? resource.agentId : undefined;
          // The same decision as the control socket and the mesh: the agent's skills are checked too.
          return allow(await service.authorizeTask(ctx, { action: "task.submit", ...(agentId === undefined ? {} : { agentId }) }));
        }
        case "agent:invoke":
          return allow(await service.authorize(ctx, { action: "agent.invoke", permission: "agent:invoke", ...(resource.type === "agent" ? { agentId: resource.id } : {}) }));
        case "task:cancel":
          return allow(await service.authorizeTask(ctx, { action: "task.cancel", ...(resource.type === "task" && resource.id !== undefined ? { taskId: resource.id } : {}) }));
        case "task:read":
          // A workflow is its starting session's, as a task is; another session's read is audited as such.
          if (resource.type === "workflow") return allow(await service.authorizeTaskRead(ctx, { id: resource.id, sessionId: resource.sessionId }, "workflow.read"));
          if (resource.type === "task" && resource.id !== undefined) {
            return allow(await service.authorizeTaskRead(ctx, { id: resource.id, sessionId: resource.sessionId }));
          }
          if (resource.type === "task" && resource.sessionId !== undefined) return allow(service.canReadTask(ctx, { sessionId: resource.sessionId }));
          return allow(service.checkPermission(ctx, "task:read"));
        case "task:approve":
          return allow(await service.authorize(ctx, { action: "approval.decide", permission: "task:approve" }));
        case "admin:all":
          return allow(await service.authorize(ctx, { action: resource.type === "admin" ? resource.action : "audit.query", permission: "admin:all" }));
      }
    },

    canReadTask: (ctx, task) => allow(service.canReadTask(ctx, { ...(task.id === undefined ? {} : { id: task.id }), sessionId: task.sessionId })),

    permissionsOf: (ctx) => ({
      userId: ctx.userId,
      roles: [...ctx.roles],
      readOnly: ctx.readOnly === true,
      // The dashboard shows a read-only session no write it would be refused.
      may: {
        submit: ctx.readOnly !== true && service.checkPermission(ctx, "task:submit").allowed,
        cancel: ctx.readOnly !== true && service.checkPermission(ctx, "task:cancel").allowed,
        approve: ctx.readOnly !== true && service.checkPermission(ctx, "task:approve").allowed,
        admin: ctx.readOnly !== true && service.checkPermission(ctx, "admin:all").allowed,
      },
    }),

    sessionIdOf: (ctx) => ctx.sessionId,
    subjectOf: (ctx) => ctx.userId,

    audit: (query) => service.getAuditLog(query),
  };
}
