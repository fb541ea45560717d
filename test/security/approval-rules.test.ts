import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { approvalRuleFor, DEFAULT_TASK_APPROVAL_TIMEOUT_MS } from "../../src/security/approval-rules.js";
import { parseRepoPolicy } from "../../src/security/policy-file.js";

const POLICY = parseRepoPolicy(`
agentPolicies:
  shell:
    approval: required
    approvalTimeout: 30m
  echo: {}
skillPolicies:
  deploy-prod:
    approval: ask
roles:
  intern:
    inherits: [developer]
    approval: required
    approvalTimeout: 2h
`);

describe("approval rules in policies", () => {
  it("name the rule that holds a task: its agent's first, then its skills', then its submitter's roles'", () => {
    expect(approvalRuleFor(POLICY, { agentId: "shell", skills: ["deploy-prod"], roles: ["intern"] })).toEqual({ rule: "agentPolicies.shell", timeoutMs: 30 * 60_000 });
    expect(approvalRuleFor(POLICY, { agentId: "echo", skills: ["deploy-prod"], roles: ["intern"] })).toEqual({ rule: "skillPolicies.deploy-prod", timeoutMs: DEFAULT_TASK_APPROVAL_TIMEOUT_MS });
    expect(approvalRuleFor(POLICY, { agentId: "echo", skills: [], roles: ["developer", "intern"] })).toEqual({ rule: "roles.intern", timeoutMs: 2 * 3600_000 });
    expect(approvalRuleFor(POLICY, { agentId: "echo", skills: ["read"], roles: ["developer"] })).toBeUndefined();
    // Names that are properties of every object are no rules.
    expect(approvalRuleFor(POLICY, { agentId: "toString", skills: ["constructor"], roles: ["__proto__"] })).toBeUndefined();
  });

  it("give the same answer whatever the order of skills and roles", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(["deploy-prod", "read", "write"]), fc.shuffledSubarray(["intern", "developer", "admin"]), (skills, roles) => {
        const sorted = approvalRuleFor(POLICY, { agentId: "echo", skills: [...skills].sort(), roles: [...roles].sort() });
        expect(approvalRuleFor(POLICY, { agentId: "echo", skills, roles })).toEqual(sorted);
      }),
    );
  });

  it("refuse a policy file whose approval settings are wrong, naming file, line and key", () => {
    expect(() => parseRepoPolicy("agentPolicies:\n  shell:\n    approval: maybe\n")).toThrow(/security.yaml:3.*agentPolicies.shell.approval/s);
    expect(() => parseRepoPolicy("agentPolicies:\n  shell:\n    approval: required\n    approvalTimeout: forever\n")).toThrow(/security.yaml:4.*approvalTimeout.*30m or 2h/s);
    expect(() => parseRepoPolicy("roles:\n  intern:\n    approval: required\n    approvalTimeout: 8d\n")).toThrow(/at most 7d/);
  });
});
