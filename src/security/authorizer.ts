import type { SecurityContext, Decision } from "./context.js";
import { ADMIN_BIT, maskAllows, maskOf, permissionBit, permissionsOf, type Permission, type PermissionMask } from "./permissions.js";
import { DEFAULT_REPO_POLICY, DEFAULT_TEAM_POLICY, type RepoPolicy, type TeamPolicy } from "./policy-schema.js";
import { buildRoleTable, type RoleTable } from "./roles.js";
import { approvalRuleFor, type ApprovalSubject } from "./approval-rules.js";
import type { ApprovalNeed } from "../engine/approval-gate.js";
import { meetsTrust, trustRank, type TrustLevel } from "./trust.js";

/** Dependencies of an {@link Authorizer}. */
export interface AuthorizerOptions {
  meshId: string;
  repoPolicy?: RepoPolicy;
  teamPolicy?: TeamPolicy;
  /** True for devices whose trust was revoked; such devices are refused everything. */
  isDeviceRevoked?: (deviceId: string) => boolean;
  /** True for sessions this node opened that were revoked or expired since the context was built. */
  isSessionEnded?: (sessionId: string) => boolean;
}

/** A decision about reading a task, with whether it crossed session boundaries (which must be audited). */
export interface TaskReadDecision extends Decision {
  crossSession: boolean;
}

interface SkillRule {
  dangerous: boolean;
  required: PermissionMask;
  allowedRoles: ReadonlySet<string> | undefined;
}

interface AgentRule {
  allowedRoles: ReadonlySet<string> | undefined;
  minimumTrust: TrustLevel | undefined;
}

const ALLOW: Decision = Object.freeze({ allowed: true, reason: "allowed" });

/**
 * Skill rules every policy starts from; a repository policy's own entry for the
 * same skill replaces them. `shell-exec` runs anything on the machine, so it is
 * dangerous unless a policy says otherwise: only admins, or roles an admin's
 * policy lists, may reach it.
 */
export const BASELINE_SKILL_POLICIES: Readonly<RepoPolicy["skillPolicies"]> = Object.freeze({ "shell-exec": Object.freeze({ dangerous: true }) });

/**
 * Pure access decisions from a context and the loaded policies, in the Cedar style:
 * every forbid is evaluated before any permit, so deny wins; nothing is allowed
 * without a permit (default deny); roles are combined with OR over precomputed masks
 * and policies are looked up by key, so no decision depends on the order of roles,
 * grants or policy entries.
 */
export class Authorizer {
  readonly roles: RoleTable;
  readonly #meshId: string;
  readonly #repo: RepoPolicy;
  readonly #team: TeamPolicy;
  readonly #isDeviceRevoked: (deviceId: string) => boolean;
  readonly #isSessionEnded: (sessionId: string) => boolean;
  readonly #allowedRoles: ReadonlySet<string> | undefined;
  readonly #remoteAllowed: boolean;
  readonly #remoteRoles: ReadonlySet<string> | undefined;
  readonly #remoteMask: PermissionMask | undefined;
  readonly #agents = new Map<string, AgentRule>();
  readonly #skills = new Map<string, SkillRule>();
  readonly #deniedSkills: ReadonlySet<string>;
  readonly #deniedAgents: ReadonlySet<string>;

  constructor(options: AuthorizerOptions) {
    this.#meshId = options.meshId;
    this.#repo = options.repoPolicy ?? DEFAULT_REPO_POLICY;
    this.#team = options.teamPolicy ?? DEFAULT_TEAM_POLICY;
    this.#isDeviceRevoked = options.isDeviceRevoked ?? (() => false);
    this.#isSessionEnded = options.isSessionEnded ?? (() => false);
    this.roles = buildRoleTable(this.#repo.roles);
    this.#allowedRoles = optionalSet(this.#repo.allowedRoles);
    this.#remoteAllowed = this.#repo.remote?.allow ?? false;
    this.#remoteRoles = optionalSet(this.#repo.remote?.allowedRoles);
    this.#remoteMask = this.#repo.remote?.permissions === undefined ? undefined : maskOf(this.#repo.remote.permissions);
    for (const [id, p] of Object.entries(this.#repo.agentPolicies)) {
      const minimumTrust = p.requireDeviceTrust === true ? "verified" : p.requireDeviceTrust === false ? undefined : p.requireDeviceTrust;
      this.#agents.set(id, { allowedRoles: optionalSet(p.allowedRoles), minimumTrust });
    }
    for (const [id, p] of Object.entries({ ...BASELINE_SKILL_POLICIES, ...this.#repo.skillPolicies })) {
      this.#skills.set(id, { dangerous: p.dangerous, required: maskOf(p.requiredPermissions ?? []), allowedRoles: optionalSet(p.allowedRoles) });
    }
    this.#deniedSkills = new Set(this.#team.deniedSkills);
    this.#deniedAgents = new Set(this.#team.deniedAgents);
  }

  /** May the context use `permission`? */
  checkPermission(context: SecurityContext, permission: Permission): Decision {
    const forbid = this.#forbids(context, permission);
    if (forbid !== undefined) return forbid;
    if (!maskAllows(this.#mask(context), permission)) return deny(this.#noRoleGrants(context, permission));
    return ALLOW;
  }

  /** The refusal, with the roles that would grant `permission` and how one is given, so the user knows what to ask for. */
  #noRoleGrants(context: SecurityContext, permission: Permission): string {
    const granting = this.roles.names.filter((r) => r !== "admin" && maskAllows(this.roles.mask(r), permission)).sort();
    const how = granting.length === 0 ? "only admin does" : `${granting.join(", ")} would (an admin grants one: coderclaw roles grant ${context.userId} ${granting[0]})`;
    return `no role of ${context.userId} grants ${permission}; ${how}`;
  }

  /** Whether the policy makes such a task wait for an approver's decision, and by which rule. */
  approvalNeeded(subject: ApprovalSubject): ApprovalNeed | undefined {
    return approvalRuleFor(this.#repo, subject);
  }

  /** May the context invoke agent `agentId`? Not one the organization policy denies; needs `agent:invoke` and the agent's policy. */
  checkAgentAccess(context: SecurityContext, agentId: string): Decision {
    if (this.#deniedAgents.has(agentId)) return deny(`agent ${agentId} is denied by the organization policy`);
    const forbid = this.#forbids(context, "agent:invoke");
    if (forbid !== undefined) return forbid;
    const rule = this.#agents.get(agentId);
    if (rule?.minimumTrust !== undefined && !meetsTrust(context.deviceTrustLevel, rule.minimumTrust)) {
      return deny(`agent ${agentId} requires device trust ${rule.minimumTrust}, device ${context.deviceId} is ${context.deviceTrustLevel}`);
    }
    const mask = this.#mask(context);
    if (!maskAllows(mask, "agent:invoke")) return deny(this.#noRoleGrants(context, "agent:invoke"));
    if (rule?.allowedRoles !== undefined && (mask & ADMIN_BIT) === 0 && !this.#holdsAny(context, rule.allowedRoles)) {
      return deny(`agent ${agentId} is restricted to roles ${[...rule.allowedRoles].sort().join(",")}`);
    }
    return ALLOW;
  }

  /**
   * May the context execute skill `skillId`? Needs `skill:execute` plus the skill's
   * required permissions. A dangerous skill (one that changes the machine) is never
   * reachable implicitly: only roles the policy lists, or admins, and only from a
   * device of at least `verified` trust.
   */
  checkSkillAccess(context: SecurityContext, skillId: string): Decision {
    if (this.#deniedSkills.has(skillId)) return deny(`skill ${skillId} is denied by the organization policy`);
    const forbid = this.#forbids(context, "skill:execute");
    if (forbid !== undefined) return forbid;
    const rule = this.#skills.get(skillId);
    if (rule?.dangerous === true && !meetsTrust(context.deviceTrustLevel, "verified")) {
      return deny(`skill ${skillId} is dangerous and device ${context.deviceId} is ${context.deviceTrustLevel}`);
    }
    const mask = this.#mask(context);
    if (!maskAllows(mask, "skill:execute")) return deny(this.#noRoleGrants(context, "skill:execute"));
    const isAdmin = (mask & ADMIN_BIT) !== 0;
    if (rule !== undefined && !isAdmin) {
      const missing = rule.required & ~mask;
      if (missing !== 0) return deny(`skill ${skillId} requires permissions ${permissionsOf(missing).join(",")}`);
      if (rule.allowedRoles !== undefined && !this.#holdsAny(context, rule.allowedRoles)) {
        return deny(`skill ${skillId} is restricted to roles ${[...rule.allowedRoles].sort().join(",")}`);
      }
      if (rule.dangerous && rule.allowedRoles === undefined) return deny(`skill ${skillId} is dangerous and no role is allowed to run it`);
    }
    return ALLOW;
  }

  /**
   * May the context read (or stream) a task? A session sees its own tasks (a caller
   * without a session sees tasks without one); reading another session's task takes
   * `admin:all` and is flagged `crossSession` for the audit log.
   */
  canReadTask(context: SecurityContext, task: { id?: string; sessionId?: string | undefined }): TaskReadDecision {
    const base = this.checkPermission(context, "task:read");
    if (!base.allowed) return { ...base, crossSession: task.sessionId !== context.sessionId };
    if (task.sessionId === context.sessionId) return { allowed: true, reason: "own session", crossSession: false };
    if ((this.#mask(context) & ADMIN_BIT) !== 0) return { allowed: true, reason: `admin:all reads task of session ${task.sessionId ?? "(none)"}`, crossSession: true };
    return { allowed: false, reason: `task ${task.id ?? "(unnamed)"} belongs to another session`, crossSession: true };
  }

  /**
   * Why the organization's or the repository's `enforceTrust` refuses the context's device everything (its trust is
   * below their `minimumTrustLevel`), or undefined when neither does. What is served to any member without a
   * permission (published packages) is still refused to such a device.
   */
  trustRefusal(context: Pick<SecurityContext, "deviceId" | "deviceTrustLevel">): string | undefined {
    if (this.#team.enforceTrust && !meetsTrust(context.deviceTrustLevel, this.#team.minimumTrustLevel)) {
      return `organization policy requires device trust ${this.#team.minimumTrustLevel}, device ${context.deviceId} is ${context.deviceTrustLevel}`;
    }
    if (this.#repo.enforceTrust && !meetsTrust(context.deviceTrustLevel, this.#repo.minimumTrustLevel)) {
      return `repository policy requires device trust ${this.#repo.minimumTrustLevel}, device ${context.deviceId} is ${context.deviceTrustLevel}`;
    }
    return undefined;
  }

  /** Whether the organization policy denies skill `skillId` to everyone (its `deniedSkills`). */
  isSkillDenied(skillId: string): boolean {
    return this.#deniedSkills.has(skillId);
  }

  /** Skills the organization requires that `available` lacks; start-up should refuse when non-empty. */
  missingRequiredSkills(available: Iterable<string>): string[] {
    const have = new Set(available);
    return this.#team.requiredSkills.filter((s) => !have.has(s)).sort();
  }

  /** Effective permission mask of a context's roles after the repository's allowedRoles filter. */
  #mask(context: SecurityContext): PermissionMask {
    let mask = 0;
    for (const role of context.roles) {
      if (this.#allowedRoles === undefined || this.#allowedRoles.has(role)) mask |= this.roles.mask(role);
    }
    return mask;
  }

  #holdsAny(context: SecurityContext, roles: ReadonlySet<string>): boolean {
    for (const role of context.roles) {
      if (roles.has(role) && (this.#allowedRoles === undefined || this.#allowedRoles.has(role))) return true;
    }
    return false;
  }

  // Forbids shared by every check, in a fixed order so the reason is deterministic.
  #forbids(context: SecurityContext, permission: Permission): Decision | undefined {
    if (context.meshId !== this.#meshId) return deny(`context is for mesh ${context.meshId}, not ${this.#meshId}`);
    if (this.#isDeviceRevoked(context.deviceId)) return deny(`device ${context.deviceId} is revoked`);
    if (context.sessionId !== undefined && this.#isSessionEnded(context.sessionId)) return deny(`session ${context.sessionId} has ended`);
    if (trustRank(context.deviceTrustLevel) < 0) return deny(`device ${context.deviceId} has unknown trust level`);
    const trust = this.trustRefusal(context);
    if (trust !== undefined) return deny(trust);
    if (context.origin === "remote") {
      if (!this.#remoteAllowed) return deny("remote requests are not allowed by the repository policy");
      if (this.#remoteMask !== undefined && (this.#remoteMask & permissionBit(permission)) === 0) return deny(`remote requests may not use ${permission}`);
      if (this.#remoteRoles !== undefined && !this.#holdsAny(context, this.#remoteRoles)) return deny("no role of the caller is allowed remote access");
    }
    return undefined;
  }
}

function deny(reason: string): Decision {
  return { allowed: false, reason };
}

function optionalSet(values: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return values === undefined ? undefined : new Set(values);
}

