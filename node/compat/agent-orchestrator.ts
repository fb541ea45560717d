/**
 * `coderclaw/coderclaw`: upstream CoderClaw's Phase 1 orchestrator
 * (`globalOrchestrator.createWorkflow(steps)`, `executeWorkflow`), running its
 * steps as this package's durable workflows.
 *
 * @packageDocumentation
 */
import "../../src/polyfills.js";
import { randomUUID } from "node:crypto";
import { stringify } from "yaml";
import { InvalidInputError, NotFoundError } from "../../src/contract/errors.js";
import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { openLocalCore, type LocalCore } from "../../src/runtime/local-core.js";
import { resolveDataDir } from "../../src/runtime/data-dir.js";
import { checkWorkflow, createWorkflowCoordinator, documentWorkflowStore, type StepDraft, type StepRecord, type WorkflowCoordinator, type WorkflowDraft, type WorkflowRecord } from "../../src/workflows/index.js";
import { connectRunningNode } from "../cli/runtime-access.js";

/** Upstream Phase 1: a task's status. */
export type TaskStatus = "pending" | "running" | "completed" | "failed" | "cancelled";

/** Upstream Phase 1: one step's task as a workflow shows it. */
export interface Task {
  id: string;
  description: string;
  agentRole: string;
  status: TaskStatus;
  input: string;
  output?: string;
  error?: string;
  createdAt: Date;
  startedAt?: Date;
  completedAt?: Date;
  /** Ids of the tasks this one waits for. */
  dependencies: string[];
  /** Ids of the tasks that wait for this one. */
  dependents: string[];
}

/** Upstream Phase 1: a step as `createWorkflow` takes it. `dependsOn` names earlier steps by their `task` text. */
export interface WorkflowStep {
  /** An agent id (`code-creator`), or `remote:auto`, `remote:auto[cap1,cap2]`, `remote:<peer id>` for the mesh to place it. */
  role: string;
  task: string;
  dependsOn?: string[];
  /**
   * The step is an approval gate: it runs only once someone approves it
   * ({@link AgentOrchestrator.approve}, or `coderclaw approvals approve` when a
   * node runs the workflow); denied, or undecided within `timeoutMs` (default
   * one hour), it fails.
   */
  requestApproval?: boolean | { timeoutMs?: number };
}

/** A step waiting for a decision, as {@link AgentOrchestrator.getPendingApprovals} lists it. */
export interface PendingApproval {
  /** What {@link AgentOrchestrator.approve} and {@link AgentOrchestrator.deny} take. */
  id: string;
  workflowId: string;
  /** The waiting step's task. */
  taskId: string;
  description: string;
  /** When no decision denies it. */
  deadline: Date;
}

/** Upstream Phase 1: a workflow and its tasks, kept current while it runs. */
export interface Workflow {
  id: string;
  steps: WorkflowStep[];
  tasks: Map<string, Task>;
  status: TaskStatus;
  createdAt: Date;
}

/** Where workflows run: the node of the data directory when one runs there, else this process. */
interface Backend {
  start(draft: WorkflowDraft): Promise<string>;
  get(id: string): Promise<WorkflowRecord>;
  cancel(id: string): Promise<void>;
  /** Open approval requests of every workflow the backend drives: id, run and step. */
  approvals(): Promise<Array<{ id: string; runId: string; stepId: string; deadline: number }>>;
  decide(id: string, approved: boolean, reason: string): Promise<void>;
  close(): Promise<void>;
}

const POLL_MS = 200;

/**
 * The upstream Phase 1 orchestrator over this package's durable workflows.
 * Steps run as tasks: through the node running on the data directory (which
 * keeps the workflow going across restarts), or, when none runs, in this
 * process on the same storage. `executeWorkflow` resolves with each completed
 * task's output by task id, as upstream does.
 */
export class AgentOrchestrator {
  readonly #workflows = new Map<string, { view: Workflow; draft: WorkflowDraft; stepOf: Map<string, string>; runId?: string }>();
  readonly #dataDir: string | undefined;
  #backend: Promise<Backend> | undefined;
  #running = 0;

  /** `dataDir`: default `$CODERCLAW_HOME`, else `~/.coderclaw`. */
  constructor(options: { dataDir?: string } = {}) {
    this.#dataDir = options.dataDir;
  }

  /**
   * A workflow of `steps`, checked now: a `dependsOn` that names no earlier
   * step's task, a cycle, or a role that is not an agent id or a `remote:`
   * target is refused naming the step (upstream skipped such dependencies).
   */
  createWorkflow(steps: WorkflowStep[]): Workflow {
    const ids = steps.map((_, i) => `step-${i + 1}`);
    const drafts: StepDraft[] = steps.map((step, i) => {
      const dependsOn = (step.dependsOn ?? []).map((text, j) => {
        const at = steps.findIndex((s) => s.task === text);
        if (at < 0 || at === i) throw new InvalidInputError(`"${String(text).slice(0, 80)}" is not the task of another step`, `steps[${i}].dependsOn[${j}]`);
        return ids[at]!;
      });
      const remote = step.role.startsWith("remote:");
      const gate = step.requestApproval === undefined || step.requestApproval === false ? undefined : step.requestApproval === true ? {} : step.requestApproval;
      return {
        id: ids[i]!,
        description: step.task.slice(0, 1000),
        input: contextInput(step, dependsOn, steps, ids),
        dependsOn,
        target: remote ? step.role : "local",
        ...(!remote && { agent: step.role }),
        ...(gate !== undefined && { approval: "required" as const, ...(gate.timeoutMs !== undefined && { approvalTimeoutMs: gate.timeoutMs }) }),
      };
    });
    const draft: WorkflowDraft = { name: "orchestrator workflow", steps: drafts };
    checkWorkflow(draft);
    const id = randomUUID();
    const now = new Date();
    const tasks = new Map<string, Task>();
    const taskIds = steps.map(() => randomUUID());
    steps.forEach((step, i) => {
      const dependencies = drafts[i]!.dependsOn!.map((d) => taskIds[ids.indexOf(d)]!);
      tasks.set(taskIds[i]!, { id: taskIds[i]!, description: step.task, agentRole: step.role, status: "pending", input: step.task, createdAt: now, dependencies, dependents: [] });
    });
    for (const task of tasks.values()) for (const d of task.dependencies) tasks.get(d)!.dependents.push(task.id);
    const view: Workflow = { id, steps, tasks, status: "pending", createdAt: now };
    this.#workflows.set(id, { view, draft, stepOf: new Map(taskIds.map((t, i) => [t, ids[i]!])) });
    return view;
  }

  /** Run a created workflow to its end; resolves with the output of each task that completed, by task id. */
  async executeWorkflow(workflowId: string, _context?: unknown): Promise<Map<string, string>> {
    const entry = this.#workflows.get(workflowId);
    if (entry === undefined) throw new NotFoundError("workflow", workflowId);
    this.#running++;
    try {
      const backend = await (this.#backend ??= this.#openBackend());
      entry.runId ??= await backend.start(entry.draft);
      entry.view.status = "running";
      for (;;) {
        const record = await backend.get(entry.runId);
        this.#refresh(entry.view, entry.stepOf, record);
        if (record.status !== "running") break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      const results = new Map<string, string>();
      for (const task of entry.view.tasks.values()) if (task.status === "completed") results.set(task.id, task.output ?? "");
      return results;
    } finally {
      if (--this.#running === 0) await this.#release();
    }
  }

  /** The workflow as it stands, or null. */
  getWorkflowStatus(workflowId: string): Workflow | null {
    return this.#workflows.get(workflowId)?.view ?? null;
  }

  /** Cancel a workflow: its running tasks are cancelled, the rest never start. */
  async cancelWorkflow(workflowId: string): Promise<void> {
    const entry = this.#workflows.get(workflowId);
    if (entry === undefined) return;
    if (entry.runId !== undefined && this.#backend !== undefined) await (await this.#backend).cancel(entry.runId);
    entry.view.status = "cancelled";
    for (const task of entry.view.tasks.values()) if (task.status === "pending" || task.status === "running") task.status = "cancelled";
  }

  /** Steps of this orchestrator's running workflows that wait for a decision, oldest first. */
  async getPendingApprovals(): Promise<PendingApproval[]> {
    if (this.#backend === undefined) return [];
    const open = await (await this.#backend).approvals();
    const out: PendingApproval[] = [];
    for (const a of open) {
      for (const [workflowId, entry] of this.#workflows) {
        if (entry.runId !== a.runId) continue;
        const taskId = [...entry.stepOf].find(([, step]) => step === a.stepId)?.[0];
        if (taskId !== undefined) out.push({ id: a.id, workflowId, taskId, description: entry.view.tasks.get(taskId)!.description, deadline: new Date(a.deadline) });
      }
    }
    return out;
  }

  /** Let a waiting step run. */
  async approve(approvalId: string, reason = ""): Promise<void> {
    await this.#decide(approvalId, true, reason);
  }

  /** Fail a waiting step (and so its workflow, unless the step may fail). */
  async deny(approvalId: string, reason = ""): Promise<void> {
    await this.#decide(approvalId, false, reason);
  }

  async #decide(approvalId: string, approved: boolean, reason: string): Promise<void> {
    if (this.#backend === undefined) throw new NotFoundError("open approval request", approvalId);
    await (await this.#backend).decide(approvalId, approved, reason);
  }

  getAllWorkflows(): Workflow[] {
    return [...this.#workflows.values()].map((e) => e.view);
  }

  #refresh(view: Workflow, stepOf: ReadonlyMap<string, string>, record: WorkflowRecord): void {
    view.status = record.status;
    for (const task of view.tasks.values()) {
      const step = record.steps[stepOf.get(task.id)!]!;
      task.status = taskStatus(step);
      const first = step.attempts[0];
      const last = step.attempts[step.attempts.length - 1];
      if (first !== undefined) task.startedAt = new Date(first.startedAt);
      if (last?.endedAt !== undefined && step.status !== "running" && step.status !== "retrying") task.completedAt = new Date(last.endedAt);
      if (step.output !== undefined) task.output = step.output;
      if (step.error !== undefined && step.status === "failed") task.error = step.error;
    }
  }

  async #openBackend(): Promise<Backend> {
    const dataDir = resolveDataDir(this.#dataDir);
    const client = await connectRunningNode(dataDir);
    if (client !== undefined) {
      return {
        start: async (draft) => ((await client.admin("workflow.start", { file: "(orchestrator)", text: stringify(draft) })) as { id: string }).id,
        get: async (id) => (await client.admin("workflow.get", { id })) as WorkflowRecord,
        cancel: async (id) => void (await client.admin("workflow.cancel", { id })),
        approvals: async () =>
          ((await client.admin("approval.list", {})) as Array<{ id: string; workflow?: string; step?: string; deadline: string }>)
            .filter((a) => a.workflow !== undefined && a.step !== undefined)
            .map((a) => ({ id: a.id, runId: a.workflow!, stepId: a.step!, deadline: Date.parse(a.deadline) })),
        decide: async (id, approve, reason) => void (await client.admin("approval.decide", { id, approve, reason })),
        close: () => client.close(),
      };
    }
    const core: LocalCore = await openLocalCore({ dataDir });
    const adapter = new LocalTransportAdapter(core);
    const coordinator: WorkflowCoordinator = createWorkflowCoordinator({ runtime: adapter, store: documentWorkflowStore(core.store) });
    return {
      start: async (draft) => (await coordinator.start(checkWorkflow(draft))).id,
      get: async (id) => (await coordinator.get(id))!,
      cancel: async (id) => void (await coordinator.cancel(id)),
      approvals: async () => coordinator.approvals().map((a) => ({ id: a.request.id, runId: a.workflowId, stepId: a.stepId, deadline: a.request.deadline })),
      decide: async (id, approved, reason) => void (await coordinator.decide(id, { approved, reason, at: Date.now() })),
      close: async () => {
        await coordinator.stop();
        await core.close();
      },
    };
  }

  /** With nothing running, storage and sockets are let go, so a program that is done exits. */
  async #release(): Promise<void> {
    const backend = this.#backend;
    this.#backend = undefined;
    if (backend !== undefined) await (await backend).close();
  }
}

/** Upstream's input for a step: its task, then each dependency's output labelled with its role. */
function contextInput(step: WorkflowStep, dependsOn: readonly string[], steps: readonly WorkflowStep[], ids: readonly string[]): string {
  const literal = (text: string): string => text.replaceAll("${", "$${");
  let input = `## Your Task\n\n${literal(step.task)}`;
  if (dependsOn.length === 0) return input;
  input += "\n\n## Context from Prior Agents\n";
  for (const d of dependsOn) {
    const role = steps[ids.indexOf(d)]!.role;
    input += `\n### ${literal(role.toUpperCase())} (${literal(role)})\n\n\${steps.${d}.output}\n`;
  }
  return input;
}

function taskStatus(step: StepRecord): TaskStatus {
  switch (step.status) {
    case "pending":
      return "pending";
    case "running":
    case "retrying":
      return "running";
    case "completed":
      return "completed";
    case "failed":
      return "failed";
    case "skipped":
    case "cancelled":
      return "cancelled";
  }
}

/** Upstream Phase 1's shared instance. */
export const globalOrchestrator = new AgentOrchestrator();
