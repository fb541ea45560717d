import ms from "ms";
import type { ApprovalNeed } from "../engine/approval-gate.js";
import type { RepoPolicy } from "./policy-schema.js";

/** How long a task waits for a decision when its rule says nothing. */
export const DEFAULT_TASK_APPROVAL_TIMEOUT_MS = 3600_000;

/** What a task is, as far as approval rules can tell. */
export interface ApprovalSubject {
  agentId: string;
  /** Skills the agent uses. */
  skills: readonly string[];
  /** Roles of the device that submitted the task. */
  roles: readonly string[];
}

type Rule = { approval?: "required" | "ask" | undefined; approvalTimeout?: string | undefined };

const own = <T>(record: Readonly<Record<string, T>>, key: string): T | undefined => (Object.hasOwn(record, key) ? record[key] : undefined);

/**
 * The first rule of `policy` that makes the task wait for a decision: its
 * agent's (`agentPolicies`), then a skill's its agent uses (`skillPolicies`),
 * then a role's of its submitter (`roles`), each in name order so that the
 * answer does not depend on the order of the policy's entries.
 */
export function approvalRuleFor(policy: RepoPolicy, subject: ApprovalSubject): ApprovalNeed | undefined {
  const candidates: Array<[string, Rule | undefined]> = [
    [`agentPolicies.${subject.agentId}`, own(policy.agentPolicies, subject.agentId)],
    ...[...subject.skills].sort().map((s): [string, Rule | undefined] => [`skillPolicies.${s}`, own(policy.skillPolicies, s)]),
    ...[...subject.roles].sort().map((r): [string, Rule | undefined] => [`roles.${r}`, own(policy.roles, r)]),
  ];
  for (const [rule, r] of candidates) {
    if (r?.approval === undefined) continue;
    // The schema checked the duration: ms() reads it as it did.
    const timeoutMs = r.approvalTimeout === undefined ? DEFAULT_TASK_APPROVAL_TIMEOUT_MS : ms(r.approvalTimeout as ms.StringValue);
    return { rule, timeoutMs };
  }
  return undefined;
}
