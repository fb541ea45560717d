import ms from "ms";
import { z } from "zod";
import { PERMISSIONS } from "./permissions.js";
import { TRUST_LEVELS } from "./trust.js";

const trustLevel = z.enum(TRUST_LEVELS as unknown as readonly ["untrusted", "verified", "trusted"]);
const permission = z.enum(PERMISSIONS);
const name = z.string().min(1).max(200);

/** The longest a task may wait for a decision. */
export const MAX_APPROVAL_TIMEOUT_MS = 7 * 24 * 3600_000;

/** `30m`, `2h`, `1d`: a duration of more than 0 and at most 7 days. */
const approvalTimeout = z
  .string()
  .max(32)
  .refine((text) => {
    const n = ms(text as ms.StringValue);
    return typeof n === "number" && Number.isFinite(n) && n > 0 && n <= MAX_APPROVAL_TIMEOUT_MS;
  }, "must be a duration such as 30m or 2h, more than 0 and at most 7d");

/**
 * A rule that makes matching tasks wait for an approver's decision before they
 * start (`required`; `ask` is the same, in OpenClaw's word); none within
 * `approvalTimeout` (default 1h) denies.
 */
const approvalFields = {
  approval: z.enum(["required", "ask"]).optional(),
  approvalTimeout: approvalTimeout.optional(),
};

/** Schema of `.coderClaw/security.yaml`, the repository policy. Unknown keys are errors: a typo must not silently loosen a policy. */
export const repoPolicySchema = z.strictObject({
  /** Refuse devices below `minimumTrustLevel` for everything. */
  enforceTrust: z.boolean().default(false),
  minimumTrustLevel: trustLevel.default("verified"),
  /** Roles that may act in this repository at all; other roles are ignored, `admin` included unless listed. */
  allowedRoles: z.array(name).optional(),
  roles: z
    .record(
      name,
      z.strictObject({
        inherits: z.array(name).optional(),
        additionalPermissions: z.array(permission).optional(),
        /** Tasks submitted by a holder of this role wait for approval. */
        ...approvalFields,
      }),
    )
    .default({}),
  /** Requests from other mesh nodes are refused unless `allow` is true; `allowedRoles` and `permissions` narrow them further. */
  remote: z
    .strictObject({
      allow: z.boolean().default(false),
      allowedRoles: z.array(name).optional(),
      permissions: z.array(permission).optional(),
    })
    .optional(),
  agentPolicies: z
    .record(
      name,
      z.strictObject({
        allowedRoles: z.array(name).optional(),
        /** `true` means at least `verified`. */
        requireDeviceTrust: z.union([z.boolean(), trustLevel]).optional(),
        ...approvalFields,
      }),
    )
    .default({}),
  skillPolicies: z
    .record(
      name,
      z.strictObject({
        /** Changes the machine: only listed roles (or admins) on a `verified` device may run it. */
        dangerous: z.boolean().default(false),
        requiredPermissions: z.array(permission).optional(),
        allowedRoles: z.array(name).optional(),
        /** Tasks of an agent that uses this skill wait for approval. */
        ...approvalFields,
      }),
    )
    .default({}),
});

/** Schema of `team-policy.yaml`, the organization policy. */
export const teamPolicySchema = z.strictObject({
  enforceTrust: z.boolean().default(false),
  minimumTrustLevel: trustLevel.default("verified"),
  /** Skills every node must have; see `Authorizer.missingRequiredSkills`. */
  requiredSkills: z.array(name).default([]),
  /** Skills nobody may run, admins included. */
  deniedSkills: z.array(name).default([]),
  /** Agents nobody may invoke, admins included. */
  deniedAgents: z.array(name).default([]),
});

/** A validated repository policy. */
export type RepoPolicy = z.output<typeof repoPolicySchema>;
/** A validated organization policy. */
export type TeamPolicy = z.output<typeof teamPolicySchema>;

/** The policy used when a repository has no `.coderClaw/security.yaml`. */
export const DEFAULT_REPO_POLICY: RepoPolicy = repoPolicySchema.parse({});
/** The policy used when there is no `team-policy.yaml`. */
export const DEFAULT_TEAM_POLICY: TeamPolicy = teamPolicySchema.parse({});
