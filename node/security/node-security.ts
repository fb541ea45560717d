import { join } from "node:path";
import { decodeStatement, type DeviceIdentity, type SignedStatement } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { Database } from "../../src/storage/level-database.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";
import {
  AuditLog,
  deviceNameRefusal,
  deviceNames,
  loadRepoPolicy,
  loadTeamPolicy,
  LocalIdentityProvider,
  SecurityService,
  openSessionFile,
  policyTextHash,
  signPolicy,
  signRoleGrant,
  type AuditBody,
  type IdentityProvider,
  type RepoPolicy,
  type SessionPersistence,
  type TaskAccess,
  type TeamPolicy,
} from "../../src/security/index.js";
import type { SubmitEnvelope } from "../../protocols/task/index.js";
import { agentSkills, type AgentLookup } from "../../src/agents/agent-skills.js";
import type { ServiceAuditEntry } from "../services/mesh-service.js";
import type { Membership } from "../mesh/membership.js";
import type { StatementSet } from "../mesh/statement-set.js";

/** The policy a founder signs when it creates a mesh: members may send each other work. */
export const DEFAULT_MESH_POLICY = "remote:\n  allow: true\n";

/** Roles the founder grants a device it pairs, by the level of the invite. */
const ROLES_BY_LEVEL: Record<"verified" | "trusted", string[]> = { trusted: ["developer"], verified: ["ci"] };

/** Options of {@link NodeSecurity.open}. */
export interface NodeSecurityOptions {
  db: Database;
  /**
   * The mesh's signed items: role grants and policy statements come from it, and
   * policy texts, keyed by their SHA-256. A policy takes effect once its text is
   * there too; the default mesh policy's text is known to every node.
   */
  set: StatementSet;
  identity: DeviceIdentity;
  membership: Membership;
  /** Project directory holding `.coderClaw/security.yaml` and `team-policy.yaml`. */
  workspaceDir: string;
  /** The database's group commit, which the audit log writes through (see `AuditLogOptions.write`). */
  write?: (ops: WriteOp[]) => Promise<void>;
  /** The node's agents: the skills a task uses are derived from its agent. */
  agents?: AgentLookup;
  /** Identity providers besides the local one (OIDC, GitHub Actions): their tokens are exchanged for sessions over HTTP. */
  providers?: ReadonlyArray<IdentityProvider<never>>;
  /** The file in the node's home where sessions outlive a restart; without it they end with the process. */
  sessionsFile?: string;
}

/**
 * The security service of one node, kept in step with its mesh: the device's own
 * audit log, the repository and organization policy files, role grants and signed
 * policies replicated through the mesh documents, and device standing from the
 * trust statements. It is rebuilt when the node founds or joins a mesh (sessions
 * do not survive that: their tokens name the mesh); they do survive a restart.
 */
export class NodeSecurity {
  private service!: SecurityService;
  private meshId: string | undefined;
  /** Statement ids already offered to the current service, so each grant and policy is applied (and audited) once. */
  private applied = new Set<string>();
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly options: NodeSecurityOptions,
    readonly audit: AuditLog,
    private readonly repoPolicy: RepoPolicy | undefined,
    private readonly teamPolicy: TeamPolicy | undefined,
    private readonly sessions: SessionPersistence | undefined,
  ) {
    // A policy whose text arrives after it takes effect then. Grants and policies themselves come through the
    // membership's change (refresh), which sees them first.
    this.unsubscribe = options.set.onAdded((items) => {
      if (items.some((i) => i.kind === "text")) void this.applyStatements(options.membership.statements());
    });
  }

  /** Load the policy files (an invalid one stops start-up, naming file, line and key) and open the audit log. */
  static async open(options: NodeSecurityOptions): Promise<NodeSecurity> {
    const dir = join(options.workspaceDir, ".coderClaw");
    const repo = await loadRepoPolicy(join(dir, "security.yaml"));
    const team = await loadTeamPolicy(join(dir, "team-policy.yaml"));
    const write = options.write;
    const audit = new AuditLog({ db: options.db, signer: options.identity, ...(write && { write: (ops) => write(ops as WriteOp[]) }) });
    const sessions = options.sessionsFile === undefined ? undefined : await openSessionFile(options.sessionsFile);
    const s = new NodeSecurity(options, audit, repo, team, sessions);
    await s.refresh();
    return s;
  }

  /** The service for the current mesh. */
  get current(): SecurityService {
    return this.service;
  }

  /** Rebuild after the node founded or joined a mesh, or when the statements changed. */
  async refresh(): Promise<void> {
    const { membership, identity } = this.options;
    const meshId = membership.meshId ?? `unpaired-${identity.peerId}`;
    if (this.service && meshId === this.meshId) {
      await this.applyStatements(membership.statements());
      return;
    }
    this.meshId = meshId;
    this.applied = new Set();
    const founder = membership.statements().find((s) => s.kind === "mesh-genesis")?.issuer;
    this.service = new SecurityService({
      meshId,
      signer: identity,
      audit: this.audit,
      // The founder of a personal mesh is its admin; before any mesh, this device owns itself.
      rootAdmins: [founder ?? identity.peerId],
      ...(this.repoPolicy && { repoPolicy: this.repoPolicy }),
      ...(this.teamPolicy && { teamPolicy: this.teamPolicy }),
      providers: [new LocalIdentityProvider(), ...(this.options.providers ?? [])],
      agentSkills: agentSkills(this.options.agents),
      ...(this.sessions && { sessionPersistence: this.sessions }),
      deviceStanding: (id) => ({ level: id === identity.peerId && !membership.meshId ? "trusted" : membership.levelOf(id), revoked: membership.isRevoked(id) }),
    });
    await this.applyStatements(membership.statements());
  }

  /**
   * The executing node's check of a remote submission, from signed evidence only:
   * the peer's own grants held here (or, for a session it relays, the user's grants
   * cut to the peer's), device trust and policies, through the same decision as
   * HTTP and the control socket. The decision comes at once; `recorded` settles
   * when its audit entry is durable (rejecting when it cannot be written), so the
   * task can be stored meanwhile but must not start before.
   */
  async authorizeSubmit(peer: string, envelope: SubmitEnvelope): Promise<{ allowed: boolean; reason?: string; recorded?: Promise<void> }> {
    try {
      const ctx = await this.service.authenticatePeer({ session: envelope.session, meshId: envelope.meshId }, peer);
      const agentId = envelope.request.agentId;
      const { decision, recorded } = this.service.admitTask(ctx, { action: "task.submit", ...(agentId !== undefined && { agentId }) });
      const audited = recorded.catch((err: unknown) => {
        throw new CoderClawError("PERMISSION_DENIED", `audit log unavailable: ${(err as Error).message}`, { cause: err });
      });
      if (decision.allowed) return { allowed: true, recorded: audited };
      // A refusal takes effect only once it is on record, as before the split.
      await audited;
      return { allowed: false, reason: decision.reason };
    } catch (err) {
      return { allowed: false, reason: (err as Error).message };
    }
  }

  /** The executing node's check of a remote cancel: the peer's own grants here must give `task:cancel`. Audited. */
  async authorizeCancel(peer: string, taskId: string): Promise<{ allowed: boolean; reason?: string }> {
    try {
      const ctx = await this.service.authenticatePeer({ meshId: this.meshId ?? "" }, peer);
      const decision = await this.service.authorizeTask(ctx, { action: "task.cancel", taskId });
      return decision.allowed ? { allowed: true } : { allowed: false, reason: decision.reason };
    } catch (err) {
      return { allowed: false, reason: (err as Error).message };
    }
  }

  /**
   * The check of a task operation by the node's owner on its control socket: the
   * token proves the caller owns this node's data directory, so the caller is this
   * node's device, with the roles its signed grants give it here (the founder is
   * admin). Same decision as HTTP and the mesh; audited.
   */
  async authorizeOwner(access: TaskAccess): Promise<{ allowed: boolean; reason?: string }> {
    const decision = await this.service.authorizeTask(this.service.contextForDevice(this.options.identity.peerId, "local"), access);
    return decision.allowed ? { allowed: true } : { allowed: false, reason: decision.reason };
  }

  /** Record something that happened outside the service's own checks (pairing, trust changes). */
  /** Record what a mesh service saw a peer do (a refusal, a pairing), as done by that peer's device. */
  recordPeerEvent(e: ServiceAuditEntry): Promise<unknown> {
    return this.record({ action: e.action, userId: e.peer, deviceId: e.peer, result: e.result, ...(e.resource !== undefined && { resource: e.resource }), ...(e.reason !== undefined && { reason: e.reason }) });
  }

  record(body: AuditBody): Promise<unknown> {
    return this.service.record(body);
  }

  /** As the founder: sign the default mesh policy (members may send each other work). */
  async signDefaultPolicy(): Promise<void> {
    await this.signPolicy("repo", DEFAULT_MESH_POLICY);
  }

  /** As an admin: sign policy text for the mesh; it replicates and takes effect on every member. */
  async signPolicy(scope: "repo" | "team", text: string): Promise<void> {
    const meshId = this.options.membership.meshId;
    if (!meshId) throw new CoderClawError("INVALID_INPUT", "no mesh to sign a policy for");
    const policy = signPolicy(this.options.identity, { meshId, scope, text });
    if (text !== DEFAULT_MESH_POLICY) await this.options.set.add([{ id: policyTextHash(text), kind: "text", bytes: Buffer.from(text, "utf8") }]);
    await this.options.membership.add([decodeStatement(policy.statement)]);
  }

  /**
   * What a device just paired gets with its certificate: from an admin (the
   * founder), the signed grant of the roles matching its level, replicated with
   * the rest of the mesh's statements.
   */
  statementsForJoiner(subject: string, level: "verified" | "trusted"): SignedStatement[] {
    const meshId = this.options.membership.meshId;
    if (!meshId || !this.isAdmin()) return [];
    return [decodeStatement(signRoleGrant(this.options.identity, { subject, roles: ROLES_BY_LEVEL[level], meshId }))];
  }

  /** Each device's name, from the names its own device or an admin signed (see `deviceNames`). */
  deviceNames(): Map<string, string> {
    return deviceNames(this.options.membership.statements(), (id) => this.service.grants.isAdmin(id));
  }

  /** True when this device is an admin of its mesh (the founder, by construction). */
  isAdmin(): boolean {
    return this.options.membership.statements().some((s) => s.kind === "mesh-genesis" && s.issuer === this.options.identity.peerId);
  }

  close(): void {
    this.unsubscribe();
  }

  /**
   * Offer role grants and signed policies (whose text is known) to the service, each once.
   * Another device's grant or name that this node accepts is not written to its audit log
   * unless it names this device: the signed statement, which every member holds, is the
   * record, and each member logging each member's arrival made every join cost the mesh
   * a log entry per member, replicated to every member. Refusals are always logged.
   */
  private async applyStatements(statements: readonly SignedStatement[]): Promise<void> {
    const self = this.options.identity.peerId;
    const grantIds = new Set(statements.filter((st) => (st.kind as string) === "role-grant").map((st) => st.id));
    // Grants before revocations: a revocation offered before its grant would be kept, but audited as premature.
    const ordered = [...statements].sort((a, b) => Number((a.kind as string) === "revocation") - Number((b.kind as string) === "revocation"));
    for (const st of ordered) {
      if (this.applied.has(st.id)) continue;
      const kind = st.kind as string;
      if (kind === "role-grant") {
        this.applied.add(st.id);
        const subject = (st.body as { subject?: unknown }).subject;
        await this.service.addRoleGrant(st.bytes, { recordAccepted: st.issuer === self || subject === self });
      } else if (kind === "revocation" && grantIds.has((st.body as { target: string }).target)) {
        // A revocation of a role grant (`roles revoke`); those of devices and certificates are the trust view's.
        this.applied.add(st.id);
        await this.service.revokeRoleGrant(st.bytes);
      } else if (kind === "device-name") {
        // Names count from the statements at each read; this only puts who named whom on record, once.
        this.applied.add(st.id);
        const body = (st as SignedStatement<"device-name">).body;
        const refusal = deviceNameRefusal(body, (id) => this.service.grants.isAdmin(id));
        if (refusal === undefined && body.issuer !== self && body.device !== self) continue;
        await this.service.record({ action: "device.rename", userId: body.issuer, deviceId: body.issuer, resource: body.device, result: refusal === undefined ? "allowed" : "denied", reason: refusal ?? `named ${body.name}` });
      } else if (kind === "security-policy") {
        const hash = (st.body as { sha256: string }).sha256;
        const text = hash === policyTextHash(DEFAULT_MESH_POLICY) ? DEFAULT_MESH_POLICY : this.options.set.text(hash);
        if (text === undefined) continue;
        this.applied.add(st.id);
        await this.service.applySignedPolicy({ statement: st.bytes, text });
      }
    }
  }
}
