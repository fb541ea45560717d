import { InvalidInputError } from "../contract/errors.js";
import { MAX_ROUTE_LENGTH, ROUTE_AUTO, ROUTE_LOCAL, type SubmitOptions } from "../contract/types.js";
import { SHELL_AGENT_ID } from "../agents/shell.js";
import { AGENT_ID_RE } from "../engine/submit-schema.js";
import { parseStepInput, type InputTemplate } from "./input-template.js";

/** Where a step runs, as a workflow names it. */
export type StepTarget =
  /** On the node that coordinates the workflow. */
  | { kind: "local" }
  /** Wherever the runtime places it, on a node with these labels when any are named. */
  | { kind: "auto"; labels: string[] }
  /** On one member, by its peer id. */
  | { kind: "peer"; peer: string };

/** How often and how soon a failed step is tried again. */
export interface RetryPolicy {
  /** Tries in all, the first included: 1 means no retry. */
  attempts: number;
  /** Wait before the second try, ms. */
  backoffMs: number;
  /** Each later wait is the one before times this. */
  factor: number;
  /** No wait is longer than this, ms. */
  maxBackoffMs: number;
}

/** One step of a workflow: an ordinary task, run once its dependencies completed. */
export interface WorkflowStep {
  id: string;
  /** The agent that runs it; absent: the runtime's default agent (as an upstream `remote:` role leaves it to the node that runs it). */
  agent?: string;
  description: string;
  /** The task's input, with `${input}`, `${input.NAME}` and `${steps.ID.output}` filled in when the step starts (for the `shell` agent, each as one word). */
  input: InputTemplate;
  target: StepTarget;
  dependsOn: string[];
  retry: RetryPolicy;
  /** The step fails when a try runs longer than this, ms. */
  timeoutMs?: number;
  /** A failure of this step does not fail the workflow; steps after it still run. */
  continueOnFailure: boolean;
  /** The step waits for a person's decision before it runs; no decision within `timeoutMs` denies it. */
  approval?: { timeoutMs: number };
}

/** A workflow: a graph of steps without cycles, in an order where each step comes after those it depends on. */
export interface WorkflowDefinition {
  name: string;
  description: string;
  steps: WorkflowStep[];
}

/** Limits on a definition's size, so a definition from outside cannot make the coordinator do unbounded work. */
export const WORKFLOW_LIMITS = { steps: 500, idLength: 64, inputBytes: 256 * 1024, dependencies: 64, attempts: 20, backoffMs: 24 * 3600_000 } as const;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const LABEL_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** A step as written, before its references are checked (the YAML loader and the API both produce these). */
export interface StepDraft {
  id: string;
  agent?: string | undefined;
  description?: string | undefined;
  input: string;
  target?: string | undefined;
  dependsOn?: string[] | undefined;
  retry?: Partial<RetryPolicy> | undefined;
  timeoutMs?: number | undefined;
  continueOnFailure?: boolean | undefined;
  /** `required`: the step runs only once an approver approved it. */
  approval?: "required" | undefined;
  /** How long an approval is waited for before it counts as denied, ms (one hour by default). */
  approvalTimeoutMs?: number | undefined;
}

/** A definition as written. */
export interface WorkflowDraft {
  name: string;
  description?: string | undefined;
  steps: StepDraft[];
}

/**
 * Parse a target as upstream writes it: `local`, `remote:auto`,
 * `remote:auto[gpu,high-memory]` or `remote:<peer id>`. `field` names it in errors.
 */
export function parseTarget(text: string, field: string): StepTarget {
  if (text === ROUTE_LOCAL) return { kind: "local" };
  if (text === `remote:${ROUTE_AUTO}` || text === ROUTE_AUTO) return { kind: "auto", labels: [] };
  const labelled = /^remote:auto\[(.*)\]$/.exec(text);
  if (labelled !== null) {
    const labels = labelled[1]!.split(",").map((l) => l.trim());
    for (const label of labels) if (!LABEL_PATTERN.test(label)) throw new InvalidInputError(`label "${label.slice(0, 80)}" in ${JSON.stringify(text.slice(0, 120))} is not 1-64 characters of [A-Za-z0-9._-]`, field);
    return { kind: "auto", labels: [...new Set(labels)] };
  }
  if (text.startsWith("remote:")) {
    const peer = text.slice("remote:".length);
    if (peer.length === 0 || peer.length > MAX_ROUTE_LENGTH || !/^[A-Za-z0-9]+$/.test(peer)) throw new InvalidInputError(`"${text.slice(0, 120)}" does not name a peer id after remote:`, field);
    return { kind: "peer", peer };
  }
  throw new InvalidInputError(`"${text.slice(0, 120)}" is not local, remote:auto, remote:auto[labels] or remote:<peer id>`, field);
}

/** The submit options that send a step where its target says. */
export function targetOptions(target: StepTarget): SubmitOptions {
  switch (target.kind) {
    case "local":
      return { route: ROUTE_LOCAL };
    case "auto":
      return target.labels.length > 0 ? { route: ROUTE_AUTO, requires: { labels: target.labels } } : { route: ROUTE_AUTO };
    case "peer":
      return { route: target.peer };
  }
}

/** The text form of a target, as {@link parseTarget} reads it. */
export function formatTarget(target: StepTarget): string {
  switch (target.kind) {
    case "local":
      return ROUTE_LOCAL;
    case "auto":
      return target.labels.length > 0 ? `remote:auto[${target.labels.join(",")}]` : "remote:auto";
    case "peer":
      return `remote:${target.peer}`;
  }
}

/** How long a step waits for a decision when its workflow does not say. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 3600_000;

const DEFAULT_RETRY: RetryPolicy = { attempts: 1, backoffMs: 1000, factor: 2, maxBackoffMs: 60_000 };

/**
 * Check a drafted workflow and return it complete: ids unique and well formed,
 * every dependency an earlier-declared or later step of the same workflow, no
 * cycle (the error names one), every `${steps.X.output}` in an input naming a
 * step it depends on (directly or through others), limits kept. Errors name the
 * offending field (`steps[3].dependsOn[0]`). Steps come back in an order where
 * each follows what it depends on.
 */
export function checkWorkflow(draft: WorkflowDraft): WorkflowDefinition {
  if (typeof draft.name !== "string" || draft.name.length === 0 || draft.name.length > 200) throw new InvalidInputError("must be 1-200 characters", "name");
  if (!Array.isArray(draft.steps) || draft.steps.length === 0) throw new InvalidInputError("a workflow needs at least one step", "steps");
  if (draft.steps.length > WORKFLOW_LIMITS.steps) throw new InvalidInputError(`${draft.steps.length} steps, over the limit of ${WORKFLOW_LIMITS.steps}`, "steps");
  const index = new Map<string, number>();
  draft.steps.forEach((s, i) => {
    const at = `steps[${i}]`;
    if (typeof s.id !== "string" || s.id.length > WORKFLOW_LIMITS.idLength || !ID_PATTERN.test(s.id)) throw new InvalidInputError(`must be 1-${WORKFLOW_LIMITS.idLength} characters of [A-Za-z0-9._-], starting with a letter or digit`, `${at}.id`);
    if (index.has(s.id)) throw new InvalidInputError(`"${s.id}" is also the id of steps[${index.get(s.id)}]`, `${at}.id`);
    index.set(s.id, i);
  });
  const steps = draft.steps.map((s, i) => checkStep(s, i, index));
  const ordered = topologicalOrder(steps);
  const ancestors = ancestorsOf(ordered);
  steps.forEach((step, i) => {
    for (const ref of step.input.stepRefs) {
      if (!index.has(ref)) throw new InvalidInputError(`\${steps.${ref}.output} names no step of this workflow`, `steps[${i}].input`);
      if (!ancestors.get(step.id)!.has(ref)) throw new InvalidInputError(`\${steps.${ref}.output} names a step "${step.id}" does not depend on: add it to dependsOn`, `steps[${i}].input`);
    }
  });
  return { name: draft.name, description: draft.description ?? "", steps: ordered };
}

function checkStep(s: StepDraft, i: number, index: ReadonlyMap<string, number>): WorkflowStep {
  const at = `steps[${i}]`;
  if (s.agent !== undefined && (typeof s.agent !== "string" || !AGENT_ID_RE.test(s.agent))) throw new InvalidInputError("must be a lowercase agent id like 'echo' or 'code-reviewer'", `${at}.agent`);
  if (typeof s.input !== "string") throw new InvalidInputError("must be text", `${at}.input`);
  if (Buffer.byteLength(s.input) > WORKFLOW_LIMITS.inputBytes) throw new InvalidInputError(`over ${WORKFLOW_LIMITS.inputBytes} bytes`, `${at}.input`);
  // The shell agent's input is a command line: its values are filled in as words of their own, never as syntax.
  const input = parseStepInput(s.input, `${at}.input`, { shell: s.agent === SHELL_AGENT_ID });
  const dependsOn = s.dependsOn ?? [];
  if (dependsOn.length > WORKFLOW_LIMITS.dependencies) throw new InvalidInputError(`${dependsOn.length} dependencies, over the limit of ${WORKFLOW_LIMITS.dependencies}`, `${at}.dependsOn`);
  dependsOn.forEach((d, j) => {
    if (!index.has(d)) throw new InvalidInputError(`"${String(d).slice(0, 80)}" is not the id of a step of this workflow`, `${at}.dependsOn[${j}]`);
    if (d === s.id) throw new InvalidInputError("a step cannot depend on itself", `${at}.dependsOn[${j}]`);
  });
  const retry = { ...DEFAULT_RETRY, ...(s.retry ?? {}) };
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1 || retry.attempts > WORKFLOW_LIMITS.attempts) throw new InvalidInputError(`must be an integer from 1 to ${WORKFLOW_LIMITS.attempts}`, `${at}.retry.attempts`);
  for (const key of ["backoffMs", "maxBackoffMs"] as const) {
    if (!Number.isFinite(retry[key]) || retry[key] < 0 || retry[key] > WORKFLOW_LIMITS.backoffMs) throw new InvalidInputError(`must be from 0 to ${WORKFLOW_LIMITS.backoffMs} ms`, `${at}.retry.${key}`);
  }
  if (!Number.isFinite(retry.factor) || retry.factor < 1 || retry.factor > 10) throw new InvalidInputError("must be from 1 to 10", `${at}.retry.factor`);
  if (s.timeoutMs !== undefined && (!Number.isFinite(s.timeoutMs) || s.timeoutMs <= 0 || s.timeoutMs > 7 * 24 * 3600_000)) throw new InvalidInputError("must be more than 0 and at most 7 days, in ms", `${at}.timeoutMs`);
  if (s.approval !== undefined && s.approval !== "required") throw new InvalidInputError(`"${String(s.approval).slice(0, 40)}" is not an approval setting: the one there is is "required"`, `${at}.approval`);
  if (s.approvalTimeoutMs !== undefined && (s.approval === undefined || !Number.isFinite(s.approvalTimeoutMs) || s.approvalTimeoutMs <= 0 || s.approvalTimeoutMs > 7 * 24 * 3600_000)) {
    throw new InvalidInputError(s.approval === undefined ? "only a step with approval: required waits for a decision" : "must be more than 0 and at most 7 days, in ms", `${at}.approvalTimeoutMs`);
  }
  return {
    id: s.id,
    ...(s.agent !== undefined && { agent: s.agent }),
    description: (s.description ?? s.id).slice(0, 1000),
    input,
    target: parseTarget(s.target ?? ROUTE_LOCAL, `${at}.target`),
    dependsOn: [...new Set(dependsOn)],
    retry,
    ...(s.timeoutMs !== undefined && { timeoutMs: s.timeoutMs }),
    continueOnFailure: s.continueOnFailure ?? false,
    ...(s.approval === "required" && { approval: { timeoutMs: s.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS } }),
  };
}

/**
 * The draft {@link checkWorkflow} turns back into `definition`, leaving out
 * what it fills in by default: the compact form a workflow document keeps.
 */
export function draftOf(definition: WorkflowDefinition): WorkflowDraft {
  return {
    name: definition.name,
    ...(definition.description !== "" && { description: definition.description }),
    steps: definition.steps.map((step): StepDraft => {
      const retry = Object.fromEntries(Object.entries(step.retry).filter(([k, v]) => DEFAULT_RETRY[k as keyof RetryPolicy] !== v));
      return {
        id: step.id,
        ...(step.agent !== undefined && { agent: step.agent }),
        ...(step.description !== step.id && { description: step.description }),
        input: step.input.source,
        ...(step.target.kind !== "local" && { target: formatTarget(step.target) }),
        ...(step.dependsOn.length > 0 && { dependsOn: step.dependsOn }),
        ...(Object.keys(retry).length > 0 && { retry }),
        ...(step.timeoutMs !== undefined && { timeoutMs: step.timeoutMs }),
        ...(step.continueOnFailure && { continueOnFailure: true }),
        ...(step.approval !== undefined && { approval: "required", ...(step.approval.timeoutMs !== DEFAULT_APPROVAL_TIMEOUT_MS && { approvalTimeoutMs: step.approval.timeoutMs }) }),
      };
    }),
  };
}

/** Steps ordered so each follows what it depends on (stable: declaration order otherwise); a cycle is refused naming it. */
function topologicalOrder(steps: readonly WorkflowStep[]): WorkflowStep[] {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const state = new Map<string, "visiting" | "done">();
  const out: WorkflowStep[] = [];
  const visit = (step: WorkflowStep, path: string[]): void => {
    const seen = state.get(step.id);
    if (seen === "done") return;
    if (seen === "visiting") {
      const cycle = [...path.slice(path.indexOf(step.id)), step.id];
      throw new InvalidInputError(`the steps depend on each other in a cycle: ${cycle.join(" -> ")}`, `steps[${steps.indexOf(step)}].dependsOn`);
    }
    state.set(step.id, "visiting");
    for (const d of step.dependsOn) visit(byId.get(d)!, [...path, step.id]);
    state.set(step.id, "done");
    out.push(step);
  };
  for (const step of steps) visit(step, []);
  return out;
}

/** For each step, every step it depends on directly or through others. */
function ancestorsOf(ordered: readonly WorkflowStep[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const step of ordered) {
    const all = new Set<string>();
    for (const d of step.dependsOn) {
      all.add(d);
      for (const a of out.get(d)!) all.add(a);
    }
    out.set(step.id, all);
  }
  return out;
}
