import type { ApprovalNeed } from "../engine/approval-gate.js";
import type { AuditLog, AuditQuery, AuditVerifyReport, IngestReport } from "./audit/log.js";
import type { AuditBody, AuditEntry } from "./audit/entry.js";
import { Authorizer, type TaskReadDecision } from "./authorizer.js";
import type { Decision, RequestOrigin, SecurityContext } from "./context.js";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";
import { GrantStore, type GrantOutcome } from "./grants.js";
import type { Permission } from "./permissions.js";
import type { RepoPolicy, TeamPolicy } from "./policy-schema.js";
import { PolicySet, type PolicyOutcome } from "./policy-set.js";
import type { SignedPolicy } from "./policy-statement.js";
import type { Signer } from "./keys.js";
import type { AuthenticatedIdentity, IdentityProvider } from "./providers.js";
import { SessionManager, verifyPeerSessionToken, type Session } from "./sessions.js";
import type { SessionPersistence } from "./session-file.js";
import type { TrustLevel } from "./trust.js";
import { agentSkills } from "../agents/agent-skills.js";
import { refusalAuditSampler } from "./audit/refusal-sampler.js";

/** A device's standing, as identity/'s trust store evaluates it. */
export interface DeviceStanding {
  level: TrustLevel;
  revoked: boolean;
}

/** Dependencies of a {@link SecurityService}. */
export interface SecurityServiceOptions {
  meshId: string;
  /** This node's device key: signs session tokens (the audit log signs with its own signer). */
  signer: Signer;
  /** This node's audit log. */
  audit: AuditLog;
  /** Admins by construction (the owner of a personal mesh). */
  rootAdmins: readonly string[];
  repoPolicy?: RepoPolicy;
  teamPolicy?: TeamPolicy;
  /** Identity providers by name (`local`, `oidc`, `github`, ...). */
  providers?: ReadonlyArray<IdentityProvider<never>>;
  /**
   * Current standing of a device, from signed trust certificates and revocations.
   * When given, it overrides whatever trust level a caller claims; devices it does
   * not know are `untrusted`.
   */
  deviceStanding?: (deviceId: string) => DeviceStanding | undefined;
  /**
   * Skills a task of an agent uses (see `agentSkills` of src/agents): derived here
   * from the agent, never taken from the request. Default: the built-in agents'
   * (`shell` uses `shell-exec`).
   */
  agentSkills?: (agentId: string) => readonly string[];
  sessionTtlMs?: number;
  /** Where sessions outlive a restart (see `openSessionFile`); without it they end with the process. */
  sessionPersistence?: SessionPersistence;
  now?: () => number;
}

/**
 * A task operation, as every entry point (HTTP, the control socket, the mesh)
 * asks for it: the same request gets the same decision whichever way it came.
 */
export interface TaskAccess {
  action: "task.submit" | "task.cancel";
  /** The agent a submission names; undefined: the node's default agent. */
  agentId?: string;
  /** The task a cancel names, for the audit entry. */
  taskId?: string;
}

/** An action to authorize: the permission it needs, and the agent and skill it touches. */
export interface AccessRequest {
  /** Audit verb, e.g. `task.submit`, `agent.invoke`, `skill.execute`. */
  action: string;
  permission: Permission;
  agentId?: string;
  skillId?: string;
  /** What is acted on, for the audit entry. */
  resource?: string;
}

/** How a request reached this node, established by the transport (never by the caller). */
export interface Connection {
  deviceId: string;
  origin: RequestOrigin;
  /** Used only when the service has no `deviceStanding` source (a local-only runtime). */
  deviceTrustLevel?: TrustLevel;
}

/**
 * The security service a node runs: sessions, role grants, policy checks and the
 * audit trail, wired together so that every decision that matters is written to
 * the node's signed log before it takes effect. Audited methods fail closed: when
 * the audit entry cannot be written, the request is refused.
 */
export class SecurityService {
  readonly meshId: string;
  readonly grants: GrantStore;
  readonly sessions: SessionManager;
  readonly audit: AuditLog;
  #authorizer: Authorizer;
  readonly #policies: PolicySet;
  readonly #providers: Map<string, IdentityProvider<never>>;
  readonly #standing: ((deviceId: string) => DeviceStanding | undefined) | undefined;
  readonly #agentSkills: (agentId: string) => readonly string[];
  readonly #revokedDevices = new Set<string>();
  readonly #now: () => number;
  /** Refused tokens audited, by origin: anyone who reaches the HTTP port can send any token (a web page too, through DNS rebinding of a loopback bind). */
  readonly #refusalAudits = refusalAuditSampler({ maxKeys: 16, what: "refused tokens", now: () => this.#now() });
  /**
   * Denials audited, by caller: a caller may ask for what it may not have as
   * often as it likes (a read-only token writing in a loop), and each entry is
   * signed and replicates to every member. Allowed decisions are all audited.
   */
  readonly #denialAudits = refusalAuditSampler({ maxKeys: 4096, what: "denials of this caller", now: () => this.#now() });
  /** Denials others recorded ({@link record}), audited by actor and action. */
  readonly #recordedDenials = refusalAuditSampler({ maxKeys: 4096, what: "such denials", now: () => this.#now() });

  constructor(options: SecurityServiceOptions) {
    this.meshId = options.meshId;
    this.audit = options.audit;
    this.#now = options.now ?? Date.now;
    this.#standing = options.deviceStanding;
    this.#agentSkills = options.agentSkills ?? agentSkills();
    this.grants = new GrantStore({ meshId: options.meshId, rootAdmins: options.rootAdmins, now: this.#now });
    this.sessions = new SessionManager({
      signer: options.signer,
      meshId: options.meshId,
      grantedRoles: (userId, deviceId) => new Set([...this.grants.rolesOf(userId), ...this.grants.rolesOf(deviceId)]),
      now: this.#now,
      ...(options.sessionTtlMs === undefined ? {} : { ttlMs: options.sessionTtlMs }),
      ...(options.sessionPersistence === undefined ? {} : { persistence: options.sessionPersistence }),
    });
    this.#providers = new Map((options.providers ?? []).map((p) => [p.name, p]));
    this.#policies = new PolicySet({ meshId: options.meshId, isAdmin: (id) => this.grants.isAdmin(id), repoPolicy: options.repoPolicy, teamPolicy: options.teamPolicy });
    this.#authorizer = this.#build(options.repoPolicy, options.teamPolicy);
  }

  /** Replaces the local repository and organization policies, e.g. after reading the policy files at start-up. Signed mesh policies in force still take precedence per scope. */
  setPolicies(repoPolicy: RepoPolicy | undefined, teamPolicy: TeamPolicy | undefined): void {
    this.#policies.setLocal(repoPolicy, teamPolicy);
    this.#rebuild();
  }

  /**
   * Offers a policy an admin signed for the mesh (local or replicated); see
   * {@link PolicySet}. Audited as `config.policy`.
   */
  async applySignedPolicy(policy: SignedPolicy): Promise<PolicyOutcome> {
    const outcome = this.#policies.offer(policy);
    this.#rebuild();
    await this.record({ action: "config.policy", userId: outcome.issuer ?? "(unknown)", result: outcome.status === "accepted" ? "allowed" : "denied", reason: `${outcome.status}: ${outcome.reason}` });
    return outcome;
  }

  // Called whenever policies or grants change: admin status decides which signed policies count.
  #rebuild(): void {
    const { repo, team } = this.#policies.current();
    this.#authorizer = this.#build(repo, team);
  }

  /** The pure decision engine, for callers that check without auditing (listing, UI hints). */
  get authorizer(): Authorizer {
    return this.#authorizer;
  }

  /** Pure check of one permission; not audited. */
  checkPermission(context: SecurityContext, permission: Permission): Decision {
    return this.#authorizer.checkPermission(context, permission);
  }

  /** Pure check of agent access; not audited. */
  checkAgentAccess(context: SecurityContext, agentId: string): Decision {
    return this.#authorizer.checkAgentAccess(context, agentId);
  }

  /** Pure check of skill access; not audited. */
  checkSkillAccess(context: SecurityContext, skillId: string): Decision {
    return this.#authorizer.checkSkillAccess(context, skillId);
  }

  /**
   * Decides a request and records the decision. The permission, agent and skill
   * checks must all allow (the first refusal, in that fixed order, is the reason).
   */
  async authorize(context: SecurityContext, request: AccessRequest): Promise<Decision> {
    return this.#record(context, request.action, this.#decide(context, request), resourceOf(request));
  }

  #decide(context: SecurityContext, request: AccessRequest): Decision {
    let decision = this.#authorizer.checkPermission(context, request.permission);
    if (decision.allowed && request.agentId !== undefined) decision = this.#authorizer.checkAgentAccess(context, request.agentId);
    if (decision.allowed && request.skillId !== undefined) decision = this.#authorizer.checkSkillAccess(context, request.skillId);
    return decision;
  }

  /**
   * The one decision on a task operation, whichever entry point it came through
   * (HTTP, the control socket, the mesh): `task:submit` (or `task:cancel`), then
   * access to the agent, then every skill the agent uses (derived from the agent,
   * so a caller cannot leave one out), in that fixed order; the first refusal is
   * the reason. Resolves once the decision is on record; fails closed when the
   * audit entry cannot be written.
   */
  async authorizeTask(context: SecurityContext, access: TaskAccess): Promise<Decision> {
    const { decision, recorded } = this.admitTask(context, access);
    try {
      await recorded;
      return decision;
    } catch (err) {
      return { allowed: false, reason: `audit log unavailable: ${(err as Error).message}` };
    }
  }

  /**
   * {@link authorizeTask} for a submission that can be stored while its decision
   * is written: the decision at once, and `recorded`, which settles when the
   * audit entry is durable. Nothing allowed may take effect before it resolves.
   */
  admitTask(context: SecurityContext, access: TaskAccess): { decision: Decision; recorded: Promise<void> } {
    const decision = this.checkTask(context, access);
    const resource = access.action === "task.cancel" ? access.taskId : (access.agentId ?? "default agent");
    const body = this.#auditedBody(context, auditBody(context, access.action, decision, resource));
    return { decision, recorded: body === undefined ? Promise.resolve() : this.audit.append(body).then(() => undefined) };
  }

  /**
   * Whether a task of `agentId` submitted by `deviceId` must wait for an
   * approver's decision before it starts here, by this node's policy (its
   * agent's, its agent's skills', the device's roles' rules).
   */
  approvalFor(agentId: string, deviceId: string): ApprovalNeed | undefined {
    return this.#authorizer.approvalNeeded({ agentId, skills: this.#agentSkills(agentId), roles: [...this.grants.rolesOf(deviceId)] });
  }

  /** Pure form of {@link authorizeTask}: the same decision, not audited. */
  checkTask(context: SecurityContext, access: TaskAccess): Decision {
    if (access.action === "task.cancel") return this.#authorizer.checkPermission(context, "task:cancel");
    let decision = this.#authorizer.checkPermission(context, "task:submit");
    if (access.agentId === undefined) return decision;
    if (decision.allowed) decision = this.#authorizer.checkAgentAccess(context, access.agentId);
    for (const skill of [...this.#agentSkills(access.agentId)].sort()) {
      if (!decision.allowed) break;
      decision = this.#authorizer.checkSkillAccess(context, skill);
    }
    return decision;
  }

  /**
   * The context of a device acting for itself on this node, from signed grants
   * held here only: the node's owner on its control socket (origin `local`) is
   * the node's own device, with whatever roles its grants give it here.
   */
  contextForDevice(deviceId: string, origin: RequestOrigin): SecurityContext {
    const standing = this.#deviceStanding(deviceId, undefined);
    return { userId: deviceId, roles: [...this.grants.rolesOf(deviceId)].sort(), deviceId, deviceTrustLevel: standing.level, origin, meshId: this.meshId };
  }

  /** {@link authorize}, throwing {@link PermissionDeniedError} when refused. */
  async enforce(context: SecurityContext, request: AccessRequest): Promise<void> {
    const decision = await this.authorize(context, request);
    if (!decision.allowed) throw new PermissionDeniedError(decision.reason);
  }

  /**
   * May the context read or stream this task? Reads of another session's task are
   * audited whether allowed (admin) or refused; reads of one's own tasks are not, to
   * keep the log about decisions that matter.
   */
  async authorizeTaskRead(context: SecurityContext, task: { id: string; sessionId?: string | undefined }, action = "task.read"): Promise<TaskReadDecision> {
    const decision = this.#authorizer.canReadTask(context, task);
    if (!decision.crossSession && decision.allowed) return decision;
    const recorded = await this.#record(context, action, decision, task.id);
    return { ...decision, ...recorded };
  }

  /** Pure form of {@link authorizeTaskRead}, for filtering lists; not audited. */
  canReadTask(context: SecurityContext, task: { id?: string; sessionId?: string | undefined }): TaskReadDecision {
    return this.#authorizer.canReadTask(context, task);
  }

  /**
   * Builds the context of a request from its bearer token and the connection it came
   * on. Trust level and revocation come from the device standing source, never from
   * the caller. Refusals are audited and throw {@link UnauthenticatedError}.
   */
  async authenticate(token: string, connection: Connection): Promise<SecurityContext> {
    const check = this.sessions.verify(token, connection.deviceId);
    if (!check.ok) {
      await this.#logRefusal(connection.origin, { action: "auth.token", userId: check.userId ?? "(unknown)", deviceId: connection.deviceId, result: "denied", reason: check.reason, ...(check.sessionId === undefined ? {} : { sessionId: check.sessionId }) });
      throw new UnauthenticatedError(check.reason);
    }
    const { session } = check;
    const standing = this.#deviceStanding(connection.deviceId, connection.deviceTrustLevel);
    if (standing.revoked) {
      await this.#logRefusal(connection.origin, { action: "auth.token", userId: session.userId, sessionId: session.id, deviceId: connection.deviceId, result: "denied", reason: `device ${connection.deviceId} is revoked` });
      throw new UnauthenticatedError(`device ${connection.deviceId} is revoked`);
    }
    return { userId: session.userId, sessionId: session.id, roles: session.roles, deviceId: connection.deviceId, deviceTrustLevel: standing.level, origin: connection.origin, meshId: this.meshId, ...(session.readOnly && { readOnly: true }) };
  }

  /**
   * Refuses a request that would change something (`what` names it, e.g. `POST
   * /v1/tasks`) when its context is read-only: the refusal is audited and returned
   * with its reason. Other contexts pass unaudited: the change's own check audits them.
   */
  async checkWrite(context: SecurityContext, what: string): Promise<Decision> {
    if (context.readOnly !== true) return { allowed: true, reason: "not read-only" };
    const reason = `session ${context.sessionId ?? "(none)"} is read-only: ${what} would change something, and only reads (GET) are allowed`;
    const body = this.#auditedBody(context, { action: "session.write", userId: context.userId, deviceId: context.deviceId, resource: what, result: "denied", reason, ...(context.sessionId === undefined ? {} : { sessionId: context.sessionId }) });
    if (body !== undefined) await this.#log(body);
    return { allowed: false, reason };
  }

  /**
   * Builds the context of a request that arrived from another mesh node, for the node
   * that executes it. `deviceId` must be the authenticated peer of the connection
   * (the libp2p PeerId). Authority is what signatures held here prove: the claimed
   * roles are cut to the device's own signed grants, and when the claim names
   * another user, also to that user's: a node cannot confer a role on a subject it
   * holds no grant for, nor lend a user more than it has itself.
   */
  contextForPeer(claim: { userId: string; roles: readonly string[]; sessionId?: string }, deviceId: string): SecurityContext {
    const device = this.grants.rolesOf(deviceId);
    const user = this.grants.rolesOf(claim.userId);
    const granted = claim.userId === deviceId ? device : new Set([...device].filter((r) => user.has(r)));
    const standing = this.#deviceStanding(deviceId, undefined);
    return {
      userId: claim.userId,
      ...(claim.sessionId === undefined ? {} : { sessionId: claim.sessionId }),
      roles: claim.roles.filter((r) => granted.has(r)),
      deviceId,
      deviceTrustLevel: standing.level,
      origin: "remote",
      meshId: this.meshId,
    };
  }

  /**
   * Builds the context of a task request relayed by another mesh node, on the node
   * that will execute it. `peer` is the authenticated remote peer of the connection
   * (never a field of the request). With a session token minted by that peer, the
   * user is the token's subject; without one, the peer device itself is the caller.
   * Either way the roles are cut down to signed grants held here (see
   * {@link contextForPeer}). Refusals are audited and throw {@link UnauthenticatedError}.
   */
  async authenticatePeer(request: { session?: string | undefined; meshId: string }, peer: string): Promise<SecurityContext> {
    const refuse = async (reason: string, userId = peer, sessionId?: string): Promise<never> => {
      await this.#log({ action: "auth.peer", userId, deviceId: peer, result: "denied", reason, ...(sessionId === undefined ? {} : { sessionId }) });
      throw new UnauthenticatedError(reason);
    };
    if (request.meshId !== this.meshId) return refuse(`request is for mesh ${request.meshId}, not ${this.meshId}`);
    if (this.#deviceStanding(peer, undefined).revoked) return refuse(`device ${peer} is revoked`);
    if (request.session === undefined) return this.contextForPeer({ userId: peer, roles: [...this.grants.rolesOf(peer)] }, peer);
    const check = verifyPeerSessionToken(request.session, { meshId: this.meshId, issuer: peer, now: this.#now() });
    if (!check.ok) return refuse(check.reason, check.userId, check.sessionId);
    const { claims } = check;
    return this.contextForPeer({ userId: claims.sub, roles: claims.roles, sessionId: claims.sid }, peer);
  }

  /**
   * Opens a session for a user on a device with `roles`, which must all be granted
   * (by signed grants or by `providerRoles`). Audited; throws {@link PermissionDeniedError}.
   */
  async createSession(userId: string, deviceId: string, roles: readonly string[], options: { providerRoles?: readonly string[]; ttlMs?: number; readOnly?: boolean } = {}): Promise<Session> {
    const base = { action: "session.create", userId, deviceId };
    if (this.#deviceStanding(deviceId, "verified").revoked) {
      await this.#log({ ...base, result: "denied", reason: `device ${deviceId} is revoked` });
      throw new PermissionDeniedError(`device ${deviceId} is revoked`);
    }
    let session: Session;
    try {
      session = await this.sessions.createSession(userId, deviceId, roles, options);
    } catch (err) {
      await this.#log({ ...base, result: "denied", reason: (err as PermissionDeniedError).reason ?? (err as Error).message });
      throw err;
    }
    await this.#log({ ...base, sessionId: session.id, result: "allowed", reason: `roles ${session.roles.join(",")}${session.readOnly ? ", read-only" : ""}` });
    return session;
  }

  /**
   * Authenticates with a named identity provider and opens a session. `roles`
   * defaults to everything the user holds (signed grants plus provider roles).
   */
  async login(providerName: string, credential: unknown, deviceId: string, roles?: readonly string[]): Promise<Session> {
    const provider = this.#providers.get(providerName);
    if (provider === undefined) {
      await this.#log({ action: "auth.login", userId: "(unknown)", deviceId, result: "denied", reason: `no identity provider ${providerName}` });
      throw new UnauthenticatedError(`no identity provider ${providerName}`);
    }
    let identity: AuthenticatedIdentity;
    try {
      identity = await provider.authenticate(credential as never);
    } catch (err) {
      const reason = err instanceof UnauthenticatedError ? err.reason : (err as Error).message;
      await this.#log({ action: "auth.login", userId: "(unknown)", deviceId, result: err instanceof UnauthenticatedError ? "denied" : "error", reason: `${providerName}: ${reason}` });
      throw err instanceof UnauthenticatedError ? err : new UnauthenticatedError(reason);
    }
    await this.#log({ action: "auth.login", userId: identity.userId, deviceId, result: "allowed", reason: providerName });
    const held = [...new Set([...this.grants.rolesOf(identity.userId), ...identity.roles])].sort();
    return this.createSession(identity.userId, deviceId, roles ?? held, { providerRoles: identity.roles });
  }

  /** Swaps a token for a fresh one; the old one is refused afterwards. Audited. */
  async rotateSession(token: string): Promise<Session> {
    const check = await this.sessions.rotate(token);
    if (!check.ok) {
      await this.#log({ action: "session.rotate", userId: check.userId ?? "(unknown)", result: "denied", reason: check.reason, ...(check.sessionId === undefined ? {} : { sessionId: check.sessionId }) });
      throw new UnauthenticatedError(check.reason);
    }
    await this.#log({ action: "session.rotate", userId: check.session.userId, sessionId: check.session.id, deviceId: check.session.deviceId, result: "allowed" });
    return check.session;
  }

  /** Revokes a session; audited under the revoking context's user. */
  async revokeSession(sessionId: string, by: { userId: string; deviceId?: string }, reason = "revoked"): Promise<boolean> {
    const found = await this.sessions.revoke(sessionId, reason);
    await this.#log({ action: "session.revoke", userId: by.userId, sessionId, result: found ? "allowed" : "error", reason: found ? reason : "unknown session", ...(by.deviceId === undefined ? {} : { deviceId: by.deviceId }) });
    return found;
  }

  /**
   * Records that a device was revoked (identity/ holds the signed revocation): its
   * sessions end and its requests are refused from now on. Audited.
   */
  async revokeDevice(deviceId: string, by: { userId: string }, reason = "device revoked"): Promise<void> {
    this.#revokedDevices.add(deviceId);
    const ended = await this.sessions.revokeDevice(deviceId, reason);
    await this.#log({ action: "device.revoke", userId: by.userId, deviceId, result: "allowed", reason: `${reason}; ${ended.length} session(s) ended` });
  }

  /**
   * Offers a signed role grant (local or replicated). Forged and non-admin
   * grants are ignored and audited as denied; an accepted one is audited unless
   * `recordAccepted` is false (a grant that neither this device issued nor
   * names: the signed grant every member holds is its record).
   */
  async addRoleGrant(bytes: Uint8Array, from: { deviceId?: string; recordAccepted?: boolean } = {}): Promise<GrantOutcome> {
    const outcome = this.grants.add(bytes);
    if (this.#policies.hasSigned) this.#rebuild();
    if (outcome.status === "accepted" && from.recordAccepted === false) return outcome;
    await this.record({
      action: "grant.add",
      userId: outcome.actor ?? "(unknown)",
      result: outcome.status === "accepted" ? "allowed" : "denied",
      reason: `${outcome.status}: ${outcome.reason}`,
      ...(outcome.grant === undefined ? {} : { resource: outcome.grant.subject }),
      ...(from.deviceId === undefined ? {} : { deviceId: from.deviceId }),
    });
    return outcome;
  }

  /** Offers a signed revocation of a role grant (identity/ `revocation` targeting the grant's id). Audited. */
  async revokeRoleGrant(bytes: Uint8Array): Promise<GrantOutcome> {
    const outcome = this.grants.addRevocation(bytes);
    if (this.#policies.hasSigned) this.#rebuild();
    await this.record({
      action: "grant.revoke",
      userId: outcome.actor ?? "(unknown)",
      result: outcome.status === "accepted" ? "allowed" : "denied",
      reason: `${outcome.status}: ${outcome.reason}`,
      ...(outcome.grant === undefined ? {} : { resource: outcome.grant.subject }),
    });
    return outcome;
  }

  /**
   * Appends an entry for something other modules decided (pairing, trust
   * change, config change, a peer's statement refused). A denial is audited
   * within a burst of 20 per actor (`userId`; all actors that are no device
   * of the mesh count as one) and action, then one every
   * 10 s saying how many went unaudited, and resolves undefined when held
   * back: a member's statement of no effect (a role grant it may not make, a
   * publication, a rename) is refused on every member, so a member signing
   * them in a loop would have every node write an entry for each, and every
   * entry replicates to every member.
   */
  async record(body: AuditBody): Promise<AuditEntry | undefined> {
    // An actor that is no device of the mesh (a key made for the purpose, as many as anyone likes) would otherwise
    // bring a fresh allowance each: all of them share one per action.
    const actor = this.#deviceStanding(body.userId, undefined).level === "untrusted" ? "(no device of the mesh)" : body.userId;
    const audited = withinAllowance(this.#recordedDenials, `${body.action} ${actor}`, body);
    return audited === undefined ? undefined : this.audit.append(audited);
  }

  /** Audit entries matching a filter, across this node's and replicated logs. */
  getAuditLog(filter: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.audit.query(filter);
  }

  /** Checks every audit chain held; see {@link AuditLog.verify}. */
  verifyAudit(): Promise<AuditVerifyReport> {
    return this.audit.verify();
  }

  /** Stores audit entries replicated from other nodes; see {@link AuditLog.ingest}. */
  ingestAudit(entries: Iterable<Uint8Array>): Promise<IngestReport> {
    return this.audit.ingest(entries);
  }

  #build(repoPolicy: RepoPolicy | undefined, teamPolicy: TeamPolicy | undefined): Authorizer {
    return new Authorizer({
      meshId: this.meshId,
      ...(repoPolicy === undefined ? {} : { repoPolicy }),
      ...(teamPolicy === undefined ? {} : { teamPolicy }),
      isDeviceRevoked: (deviceId) => this.#revokedDevices.has(deviceId) || (this.#standing?.(deviceId)?.revoked ?? false),
      isSessionEnded: (sessionId) => this.sessions.hasEnded(sessionId),
    });
  }

  #deviceStanding(deviceId: string, claimed: TrustLevel | undefined): DeviceStanding {
    const revokedHere = this.#revokedDevices.has(deviceId);
    if (this.#standing !== undefined) {
      const standing = this.#standing(deviceId) ?? { level: "untrusted", revoked: false };
      return { level: standing.level, revoked: standing.revoked || revokedHere };
    }
    return { level: claimed ?? "untrusted", revoked: revokedHere };
  }

  async #record<D extends Decision>(context: SecurityContext, action: string, decision: D, resource: string | undefined): Promise<D | Decision> {
    const body = this.#auditedBody(context, auditBody(context, action, decision, resource));
    if (body === undefined) return decision;
    try {
      await this.audit.append(body);
      return decision;
    } catch (err) {
      return { allowed: false, reason: `audit log unavailable: ${(err as Error).message}` };
    }
  }

  /**
   * `body` as it is to be audited: an allowed decision as it is, a denial
   * within {@link #denialAudits}'s allowance for its caller (saying how many
   * went unaudited before it), or undefined for a denial held back. The
   * caller is what was proven of it: its session, or for a peer's request or
   * one without a session its device (a peer names the user it acts for, and
   * could name a new one each time).
   */
  #auditedBody(context: SecurityContext, body: AuditBody): AuditBody | undefined {
    const caller = context.origin === "remote" || context.sessionId === undefined ? `device ${context.deviceId}` : `session ${context.sessionId}`;
    return withinAllowance(this.#denialAudits, caller, body);
  }

  async #log(body: AuditBody): Promise<void> {
    await this.audit.append(body);
  }

  /** A refused token's entry, within the allowance of its origin; the next one audited says how many went unaudited meanwhile. */
  async #logRefusal(origin: RequestOrigin, body: AuditBody & { reason: string }): Promise<void> {
    const audited = withinAllowance(this.#refusalAudits, origin, body);
    if (audited !== undefined) await this.#log(audited);
  }
}

/**
 * `body` as it is to be audited: anything but a denial as it is; a denial
 * within `sample`'s allowance for `key`, its reason saying how many went
 * unaudited before it; undefined for one held back.
 */
function withinAllowance(sample: (key: string, reason: string) => string | undefined, key: string, body: AuditBody): AuditBody | undefined {
  if (body.result !== "denied") return body;
  const reason = sample(key, body.reason ?? "");
  return reason === undefined ? undefined : { ...body, reason };
}

function resourceOf(request: AccessRequest): string | undefined {
  return request.resource ?? request.skillId ?? request.agentId;
}

/** The audit entry of a decision. */
function auditBody(context: SecurityContext, action: string, decision: Decision, resource: string | undefined): AuditBody {
  return {
    action,
    userId: context.userId,
    deviceId: context.deviceId,
    result: decision.allowed ? "allowed" : "denied",
    reason: decision.reason,
    ...(context.sessionId === undefined ? {} : { sessionId: context.sessionId }),
    ...(resource === undefined ? {} : { resource }),
  };
}
