import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import { setImmediate as nextTurn } from "node:timers/promises";
import { CoderClawError, NotFoundError } from "../contract/errors.js";
import type { TaskState, TaskSubmitRequest, TransportAdapter } from "../contract/types.js";
import { targetOptions, type WorkflowDefinition, type WorkflowStep } from "./definition.js";
import { fillStepInput } from "./input-template.js";
import { approvalsToAsk, AWAITING_APPROVAL, backoffAfter, newWorkflowRecord, nextRetryAt, stepsToStart, workflowOutcome, workflowOutcomeAfter, type ApprovalDecision, type ApprovalRequest, type StepAttempt, type StepRecord, type WorkflowRecord, type WorkflowStarter } from "./workflow-record.js";
import type { WorkflowChange, WorkflowStore } from "./workflow-store.js";

/** What a coordinator needs of a runtime: the contract's task calls, and a listing to find a step submitted just before a crash. */
export type WorkflowRuntime = Pick<TransportAdapter, "submitTask" | "getTaskState" | "streamTaskUpdates" | "cancelTask" | "listTasks">;

/** Dependencies of {@link createWorkflowCoordinator}. */
export interface WorkflowCoordinatorOptions {
  runtime: WorkflowRuntime;
  store: WorkflowStore;
  now?: () => number;
  /** Failures of the coordinator's own work (storage, the runtime), with the workflow they concern. */
  onError?: (workflowId: string, error: Error) => void;
  /**
   * The device coordinating: named in each new record, whose id `newId` binds to
   * it. Records of other coordinators (replicated here) are shown, never driven.
   */
  coordinator?: { id: string; newId: () => string };
  /** Told once an approval request is durable, and once its decision is (a timeout's too). */
  onApproval?: (event: ApprovalEvent) => void;
}

/** An approval request asked or decided, with the step it gates. */
export interface ApprovalEvent {
  type: "asked" | "decided";
  workflowId: string;
  workflowName: string;
  stepId: string;
  agent?: string;
  request: ApprovalRequest;
}

/** An open approval request, as approvers list them. */
export type OpenApproval = Omit<ApprovalEvent, "type">;

/** Runs workflows: each step as a task of the runtime, as soon as its dependencies completed. */
export interface WorkflowCoordinator {
  /**
   * Store a new workflow and start its first steps; resolves with its record
   * once it is durable. The first steps are submitted while the record is
   * written; should the write fail, their tasks are cancelled and this rejects.
   * `startedBy` is kept in the record (absent: the coordinator's owner).
   */
  start(definition: WorkflowDefinition, input?: string | Record<string, string>, startedBy?: WorkflowStarter): Promise<WorkflowRecord>;
  /** Take up every workflow the store holds as running (after a restart); resolves with how many. */
  resume(): Promise<number>;
  /** A copy the caller may change, but for its definition, which it shares with the coordinator: read it only. */
  get(id: string): Promise<WorkflowRecord | undefined>;
  /** Stored workflows, newest first. */
  list(): Promise<WorkflowRecord[]>;
  /** Cancel a running workflow: its running steps' tasks are cancelled, the rest skipped. False when it had ended. */
  cancel(id: string): Promise<boolean>;
  /**
   * Resolves with the record once the workflow has ended: a completed one as
   * soon as its last step completed, while its end is written (until then
   * `get` and `list` answer from memory, and a restart finds every step's task
   * by its key and completes it again, running nothing twice); a failed or
   * cancelled one once its end is durable, as that end decided what did not run.
   */
  wait(id: string, signal?: AbortSignal): Promise<WorkflowRecord>;
  /** Approval requests waiting for a decision, oldest first. */
  approvals(): OpenApproval[];
  /**
   * Record a decision on an open request and act on it: approved, the step
   * starts; denied, it fails. Whoever calls this has checked who decided: the
   * coordinator checks only that the request is open. Refused (NOT_FOUND) for a
   * request it does not hold open, which covers one decided already.
   */
  decide(requestId: string, decision: ApprovalDecision): Promise<OpenApproval>;
  /** Stop driving workflows (their tasks keep running; {@link resume} takes them up again). */
  stop(): Promise<void>;
}

/** The session of a workflow's steps: they share a workspace, and a step submitted just before a crash is found among them. */
export function workflowSession(workflowId: string): string {
  return `workflow-${workflowId}`;
}

const TERMINAL_TASK = new Set(["completed", "failed", "cancelled"]);

/**
 * Every task a workflow's session can hold (500 steps, 20 tries each): a try is looked for by its key among them
 * all, as a listing's first page (the newest 100) misses a wide fan-out's first steps and one would run twice.
 */
const SESSION_TASKS_LIMIT = 10_000;

/**
 * A try's submission answered with one of these was refused for what it is (its input, an agent no one has, a
 * permission not held): submitted again it would be refused again, so the try fails with the reason, where any
 * other trouble is the coordinator's own and the try is taken up again.
 */
const REFUSALS = new Set<string>(["INVALID_INPUT", "UNKNOWN_AGENT", "PERMISSION_DENIED", "UNAUTHENTICATED"]);

/**
 * A workflow's progress is written once its steps have been quiet this long
 * (see WorkflowRun's #write), ms: a fast chain of steps costs one write, not
 * one or two per step.
 */
const WRITE_QUIET_MS = 25;
/** ... but no later than this after the first change waiting, so others see a busy workflow move on, ms. */
const WRITE_WITHIN_MS = 250;

/**
 * A coordinator over `runtime` and `store`. Each try's task is submitted under
 * an idempotency key made of workflow, step and try number, in the workflow's
 * own session; the record of the try, its task and its outcome are written as
 * they happen, in one store write per turn, without holding the next step up.
 * Restarted, it reads the session's tasks once before anything starts: a try
 * whose task exists (recorded or not) is followed to its end, a try with none
 * is submitted, so each step completes once.
 */
export function createWorkflowCoordinator(options: WorkflowCoordinatorOptions): WorkflowCoordinator {
  const { runtime, store } = options;
  const now = options.now ?? Date.now;
  const runs = new Map<string, WorkflowRun>();
  let stopped = false;
  const mine = (record: WorkflowRecord): boolean => record.coordinator === undefined || record.coordinator === options.coordinator?.id;
  // A step's task is written by this node, which names itself its executor; a member's replicated task names that member.
  const ours = (task: TaskState): boolean => options.coordinator === undefined || task.executorId === undefined || task.executorId === options.coordinator.id;

  /** Drive `record`: a new workflow starts its first steps; one `taken up` after a restart first finds what was under way. */
  const drive = (record: WorkflowRecord, takenUp: boolean, created?: Promise<void>): WorkflowRun => {
    const run = new WorkflowRun(record, { runtime, store, now, onError: (e) => options.onError?.(record.id, e), onApproval: (e) => options.onApproval?.(e), onEnd: () => runs.delete(record.id), ours }, created);
    runs.set(record.id, run);
    if (takenUp) run.recover();
    else run.pump();
    return run;
  };

  return {
    async start(definition, input = "", startedBy) {
      if (stopped) throw new CoderClawError("SHUTTING_DOWN", "the workflow coordinator has stopped");
      const record = newWorkflowRecord(options.coordinator?.newId() ?? randomUUID(), definition, input, now(), options.coordinator?.id, startedBy);
      // Written the turn after the first steps are submitted: their tasks' records, written at the end of this turn,
      // would otherwise wait behind it for a write of their own.
      const created = nextTurn().then(() => store.create(record));
      const run = drive(copyRecord(record), false, created);
      try {
        await created;
      } catch (err) {
        await run.abandon();
        throw err;
      }
      return record;
    },
    async resume() {
      let n = 0;
      for await (const id of store.ids()) {
        if (runs.has(id)) continue;
        const record = await store.get(id).catch((error: Error) => void options.onError?.(id, error));
        // Taken up meanwhile (by a wait): two runs of one workflow would each submit its steps.
        if (record === undefined || record.status !== "running" || !mine(record) || runs.has(id)) continue;
        drive(record, true);
        n++;
      }
      return n;
    },
    async get(id) {
      return runs.get(id)?.snapshot() ?? (await store.get(id));
    },
    async list() {
      const out: WorkflowRecord[] = [];
      for await (const id of store.ids()) {
        const record = runs.get(id)?.snapshot() ?? (await store.get(id).catch(() => undefined));
        if (record !== undefined) out.push(record);
      }
      return out.sort((a, b) => b.createdAt - a.createdAt);
    },
    async cancel(id) {
      const run = runs.get(id);
      if (run !== undefined) return run.cancel();
      const record = await store.get(id);
      if (record === undefined) throw new NotFoundError("workflow", id);
      if (record.status === "running" && !mine(record)) throw new CoderClawError("INVALID_INPUT", `workflow ${id} is coordinated by ${record.coordinator}: cancel it there`);
      return false;
    },
    async wait(id, signal) {
      const run = runs.get(id);
      if (run !== undefined) return run.ended(signal);
      const record = await store.get(id);
      if (record === undefined) throw new NotFoundError("workflow", id);
      if (record.status !== "running") return record;
      if (!mine(record)) throw new CoderClawError("INVALID_INPUT", `workflow ${id} is coordinated by ${record.coordinator}: follow it there`);
      // Held as running but driven by no one here: taken up, so waiting does not wait for ever; unless a resume or
      // another wait took it up while it was read (two runs of one workflow would each submit its steps).
      return (runs.get(id) ?? drive(record, true)).ended(signal);
    },
    approvals() {
      return [...runs.values()].flatMap((r) => r.openApprovals()).sort((a, b) => a.request.askedAt - b.request.askedAt);
    },
    async decide(requestId, decision) {
      for (const run of runs.values()) if (run.holds(requestId)) return run.decide(requestId, decision);
      throw new NotFoundError("open approval request", requestId);
    },
    async stop() {
      stopped = true;
      await Promise.all([...runs.values()].map((r) => r.stop()));
      runs.clear();
    },
  };
}

interface RunDeps {
  runtime: WorkflowRuntime;
  store: WorkflowStore;
  now: () => number;
  onError: (error: Error) => void;
  onApproval: (event: ApprovalEvent) => void;
  onEnd: () => void;
  /** Whether a listed task is one this coordinator's node submitted: the session and keys of others' tasks are theirs to choose. */
  ours: (task: TaskState) => boolean;
}

/** Changes not yet handed to the store: the head's newest values, each step's newest record, and who waits for them. */
interface PendingWrite {
  head: Omit<WorkflowChange, "steps">;
  steps: Map<string, StepRecord>;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
  /** It holds changes nobody waits for (see WorkflowRun's #note): a failed write is reported once for them. */
  noted: boolean;
}

/** One workflow being driven: its record in memory, written through to the store in order. */
class WorkflowRun {
  readonly #record: WorkflowRecord;
  readonly #deps: RunDeps;
  readonly #steps: Map<string, WorkflowStep>;
  /** The steps that depend on each step. */
  readonly #dependents = new Map<string, WorkflowStep[]>();
  /** Steps whose try is being driven by this run. */
  readonly #active = new Set<string>();
  readonly #controller = abortableBy();
  /** Changes not yet handed to the store, and who waits for them. */
  #pending: PendingWrite | undefined;
  /** The write loop, while it runs. */
  #writes: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Deadlines of open approval requests, by step. */
  readonly #deadlines = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #waiters: Array<(r: WorkflowRecord) => void> = [];
  #stopped = false;
  /** A change waiting for its window must be written now. */
  #urgent = false;
  /** Ends the wait for quiet, when an urgent change comes. */
  #wake: (() => void) | undefined;
  /** When the newest change waiting came (performance.now()). */
  #lastChangeAt = 0;
  /** After a restart: the session's tasks by idempotency key, read once before anything starts. */
  readonly #submitted = new Map<string, string>();
  /** The record's creation: no change is written before it is durable. */
  readonly #created: Promise<void>;
  /** Its creation failed: every task it submitted is cancelled. */
  #abandoned = false;
  /** Every step before this index of the definition has ended; an ended step stays ended, so the check for the end goes on from here. */
  #endedBefore = 0;
  /** Its end, while it is being recorded: {@link stop} lets it finish. */
  #ending: Promise<void> | undefined;

  constructor(record: WorkflowRecord, deps: RunDeps, created = Promise.resolve()) {
    this.#record = record;
    this.#deps = deps;
    this.#created = created;
    this.#steps = new Map(record.definition.steps.map((s) => [s.id, s]));
    for (const step of record.definition.steps) {
      for (const d of step.dependsOn) {
        const list = this.#dependents.get(d);
        if (list === undefined) this.#dependents.set(d, [step]);
        else list.push(step);
      }
    }
  }

  snapshot(): WorkflowRecord {
    return copyRecord(this.#record);
  }

  /**
   * After a restart: the tasks of the workflow's session are read once, so a
   * try whose task was submitted but whose start never reached the record is
   * found by its key rather than submitted again; then every try that was under
   * way is followed again from what the record says of it, and what may start
   * starts.
   */
  recover(): void {
    void (async () => {
      const tasks = await this.#deps.runtime.listTasks({ sessionId: workflowSession(this.#record.id), limit: SESSION_TASKS_LIMIT });
      for (const t of tasks) if (this.#deps.ours(t) && typeof t.metadata?.idempotencyKey === "string") this.#submitted.set(t.metadata.idempotencyKey, t.id);
      for (const [id, r] of Object.entries(this.#record.steps)) {
        const attempt = r.attempts[r.attempts.length - 1];
        if (r.status === "running" && attempt !== undefined && attempt.outcome === undefined) this.#follow(this.#steps.get(id)!, attempt, true);
      }
      this.pump();
    })().catch((err: Error) => {
      // The runtime could not be read: nothing is started until it can be, so nothing starts twice.
      this.#deps.onError(err);
      if (!this.#stopped) setTimeout(() => this.recover(), 1000).unref?.();
    });
  }

  ended(signal?: AbortSignal): Promise<WorkflowRecord> {
    if (this.#record.status !== "running") return Promise.resolve(this.snapshot());
    return new Promise((resolve, reject) => {
      this.#waiters.push(resolve);
      signal?.addEventListener("abort", () => reject(signal.reason instanceof Error ? signal.reason : new CoderClawError("CANCELLED", "stopped waiting")), { once: true });
    });
  }

  /**
   * Start what may start, end the workflow when it has ended, and wake up for
   * the next retry. After `settled` ended, only the steps that depend on it can
   * have become ready (a retry waits for its timer, which looks at every step),
   * and the next retry changes only when it is to be retried.
   */
  pump(settled?: string): void {
    if (this.#stopped || this.#record.status !== "running") return;
    const outcome = this.#endReached(settled);
    if (outcome !== undefined) {
      void this.#end(outcome.status, outcome.status === "failed" ? outcome.error : undefined);
      return;
    }
    const candidates = settled === undefined ? undefined : (this.#dependents.get(settled) ?? []);
    for (const id of approvalsToAsk(this.#record, candidates)) this.#ask(this.#steps.get(id)!);
    if (candidates === undefined) for (const [id, r] of Object.entries(this.#record.steps)) if (r.approval !== undefined && r.approval.decision === undefined && !this.#deadlines.has(id)) this.#arm(id, r.approval);
    const t = this.#deps.now();
    for (const id of stepsToStart(this.#record, t, candidates)) if (!this.#active.has(id)) this.#startTry(this.#steps.get(id)!);
    // Only a step that ended to be retried changes which retry is next (a step started here was pending).
    if (settled !== undefined && this.#record.steps[settled]!.status !== "retrying") return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const next = nextRetryAt(this.#record);
    if (next !== undefined) {
      this.#timer = setTimeout(() => this.pump(), Math.max(0, next - this.#deps.now()));
      this.#timer.unref?.();
    }
  }

  /** How the workflow ends, if it has: after `settled` ended, from what that changed (see workflowOutcomeAfter); without, from every step. */
  #endReached(settled: string | undefined): ReturnType<typeof workflowOutcome> {
    if (settled === undefined) return workflowOutcome(this.#record);
    const { outcome, endedBefore } = workflowOutcomeAfter(this.#record, this.#steps.get(settled)!, this.#endedBefore);
    this.#endedBefore = endedBefore;
    return outcome;
  }

  async cancel(): Promise<boolean> {
    if (this.#record.status !== "running") return false;
    await this.#end("cancelled", "cancelled");
    return true;
  }

  /** The record was never stored: stop, and cancel every task submitted (one still being submitted is cancelled once taken). */
  async abandon(): Promise<void> {
    this.#abandoned = true;
    const cancels: Array<Promise<unknown>> = [];
    for (const r of Object.values(this.#record.steps)) {
      const taskId = r.attempts[r.attempts.length - 1]?.taskId;
      if (r.status === "running" && taskId !== undefined) cancels.push(this.#deps.runtime.cancelTask(taskId).catch(() => false));
    }
    // Its changes have nowhere to go: the write loop drops them at once (see #flush).
    this.#urgent = true;
    this.#wake?.();
    await this.stop();
    await Promise.all(cancels);
    this.#deps.onEnd();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#controller.abort(RUN_OVER);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#disarm();
    await this.#ending;
    await this.#writes;
  }

  openApprovals(): OpenApproval[] {
    const out: OpenApproval[] = [];
    if (this.#record.status !== "running") return out;
    for (const [id, r] of Object.entries(this.#record.steps)) if (r.approval !== undefined && r.approval.decision === undefined) out.push(this.#approvalOf(id, r.approval));
    return out;
  }

  holds(requestId: string): boolean {
    return this.openApprovals().some((a) => a.request.id === requestId);
  }

  /** Record the decision, then act on it: the step starts (approved) or fails (denied). */
  async decide(requestId: string, decision: ApprovalDecision): Promise<OpenApproval> {
    const entry = Object.entries(this.#record.steps).find(([, r]) => r.approval?.id === requestId && r.approval.decision === undefined);
    if (entry === undefined || this.#record.status !== "running") throw new NotFoundError("open approval request", requestId);
    const [stepId, r] = entry;
    // No decision by the deadline denies: one made after it (a coordinator down then takes it up late, before its timer
    // fires) is left for the timer, which denies. A timeout's own denial names no one.
    if (decision.by !== undefined && decision.at > r.approval!.deadline) throw new CoderClawError("INVALID_INPUT", `approval request ${requestId} was decided at ${new Date(decision.at).toISOString()}, after its deadline ${new Date(r.approval!.deadline).toISOString()}`);
    r.approval!.decision = structuredClone(decision);
    const timer = this.#deadlines.get(stepId);
    if (timer !== undefined) clearTimeout(timer);
    this.#deadlines.delete(stepId);
    delete r.reason;
    // A denial fails the step in memory only once it is durable and acted on at once: failed meanwhile, another step
    // ending would look only at itself for a failure (see workflowOutcomeAfter) and could complete the workflow.
    const denied: StepRecord | undefined = decision.approved ? undefined : { ...copyStep(r), status: "failed", error: `approval denied${decision.by === undefined ? "" : ` by ${decision.by}`}: ${decision.reason}` };
    try {
      await this.#write({ steps: { [stepId]: denied ?? r } }, true);
    } finally {
      if (denied !== undefined) Object.assign(r, { status: denied.status, error: denied.error });
    }
    const event = this.#approvalOf(stepId, r.approval!);
    this.#deps.onApproval({ type: "decided", ...event });
    this.pump();
    return event;
  }

  /** Ask for a gated step's approval: the request is durable before anyone hears of it. */
  #ask(step: WorkflowStep): void {
    const r = this.#record.steps[step.id]!;
    const askedAt = this.#deps.now();
    r.approval = { id: randomUUID(), askedAt, deadline: askedAt + step.approval!.timeoutMs };
    r.reason = AWAITING_APPROVAL;
    this.#arm(step.id, r.approval);
    this.#write({ steps: { [step.id]: r } }, true).then(
      () => this.#deps.onApproval({ type: "asked", ...this.#approvalOf(step.id, r.approval!) }),
      (err: Error) => this.#deps.onError(err),
    );
  }

  /** No decision by the deadline denies the request (also after a restart: the deadline is recorded). */
  #arm(stepId: string, request: ApprovalRequest): void {
    const timer = setTimeout(
      () => {
        this.#deadlines.delete(stepId);
        if (this.#stopped) return;
        this.decide(request.id, { approved: false, reason: `no decision within ${request.deadline - request.askedAt} ms`, at: this.#deps.now() }).catch(() => undefined);
      },
      Math.max(0, request.deadline - this.#deps.now()),
    );
    timer.unref?.();
    this.#deadlines.set(stepId, timer);
  }

  #disarm(): void {
    for (const t of this.#deadlines.values()) clearTimeout(t);
    this.#deadlines.clear();
  }

  #approvalOf(stepId: string, request: ApprovalRequest): OpenApproval {
    const step = this.#steps.get(stepId)!;
    return { workflowId: this.#record.id, workflowName: this.#record.definition.name, stepId, ...(step.agent !== undefined && { agent: step.agent }), request: structuredClone(request) };
  }

  #startTry(step: WorkflowStep): void {
    const r = this.#record.steps[step.id]!;
    const n = r.attempts.length + 1;
    const attempt: StepAttempt = { n, key: `${this.#record.id}/${step.id}/${n}`, startedAt: this.#deps.now() };
    // Submitted before a crash that kept its start from the record: the same try, not a new task.
    const found = this.#submitted.get(attempt.key);
    if (found !== undefined) attempt.taskId = found;
    r.status = "running";
    delete r.retryAt;
    r.attempts.push(attempt);
    this.#follow(step, attempt, false);
  }

  /** Drive one try to its outcome, then record it and move the workflow on. */
  #follow(step: WorkflowStep, attempt: StepAttempt, recovering: boolean): void {
    this.#active.add(step.id);
    const signal = this.#controller.signal;
    void (async () => {
      let ended: { outcome: "completed"; output: string } | { outcome: "failed" | "cancelled"; error: string };
      try {
        // Not waited for: a restart that lost it finds the task by its key (see recover), and it joins the next write.
        if (!recovering) this.#note(step.id);
        const taskId = attempt.taskId ?? (await this.#submit(step, attempt, recovering));
        if (signal.aborted) {
          // Taken while the run was abandoned or ended (cancelled, failed): cancelled here, as neither could know it (a second
          // cancel is refused harmlessly). A stop leaves it running, as it does every step's task.
          if (this.#abandoned || this.#record.status !== "running") await this.#deps.runtime.cancelTask(taskId).catch(() => false);
          return;
        }
        ended = await this.#outcome(step, attempt, taskId, signal);
      } catch (err) {
        if (signal.aborted || this.#stopped) return;
        if (!(err instanceof CoderClawError) || !REFUSALS.has(err.code)) {
          // The coordinator's own trouble (storage, the runtime unreachable): the try is taken up again from its record.
          this.#deps.onError(err as Error);
          this.#active.delete(step.id);
          setTimeout(() => this.#stopped || this.#follow(step, attempt, true), 1000).unref?.();
          return;
        }
        ended = { outcome: "failed", error: err.message };
      }
      if (signal.aborted || this.#stopped) return;
      this.#active.delete(step.id);
      this.#settle(step, attempt, ended);
    })();
  }

  /** The task of a try: found by its key when it may have been submitted before a crash, else submitted now; its id recorded. */
  async #submit(step: WorkflowStep, attempt: StepAttempt, recovering: boolean): Promise<string> {
    const session = workflowSession(this.#record.id);
    let task: TaskState | undefined;
    if (recovering) task = (await this.#deps.runtime.listTasks({ sessionId: session, limit: SESSION_TASKS_LIMIT })).find((t) => this.#deps.ours(t) && t.metadata?.idempotencyKey === attempt.key);
    if (task === undefined) {
      const outputs = new Map<string, string>();
      for (const id of step.input.stepRefs) {
        const r = this.#record.steps[id];
        if (r?.status === "completed" || r?.status === "failed") outputs.set(id, r.output ?? "");
      }
      const input = fillStepInput(step.input, { input: this.#record.input, outputs }, `steps.${step.id}.input`);
      const request: TaskSubmitRequest = {
        ...(step.agent !== undefined && { agentId: step.agent }),
        description: step.description,
        input,
        sessionId: session,
        // The key names workflow, step and try (`<workflow>/<step>/<try>`); every task carries its metadata twice in each write, so nothing more.
        metadata: { idempotencyKey: attempt.key },
      };
      task = await this.#deps.runtime.submitTask(request, targetOptions(step.target));
    }
    attempt.taskId = task.id;
    // Not waited for: a restart that lost it finds the task by its key, and it joins the next write.
    this.#note(step.id);
    return task.id;
  }

  /** Follow a try's task to its end; past the step's timeout it is cancelled and the try fails. */
  async #outcome(step: WorkflowStep, attempt: StepAttempt, taskId: string, signal: AbortSignal): Promise<{ outcome: "completed"; output: string } | { outcome: "failed" | "cancelled"; error: string }> {
    const { runtime } = this.#deps;
    // A step with a timeout stops watching at it too; one without watches on the run's signal (a controller and a
    // listener of its own per step cost more than the rest of following it).
    let watch: AbortSignal = signal;
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stop: (() => void) | undefined;
    if (step.timeoutMs !== undefined) {
      const controller = new AbortController();
      stop = () => controller.abort();
      signal.addEventListener("abort", stop, { once: true });
      watch = controller.signal;
      timer = setTimeout(
        () => {
          timedOut = true;
          controller.abort();
        },
        Math.max(0, attempt.startedAt + step.timeoutMs - this.#deps.now()),
      );
    }
    try {
      for (;;) {
        // The stream replays what happened and ends after the end, so the task's state is read once, when it has ended.
        try {
          for await (const e of runtime.streamTaskUpdates(taskId, { signal: watch })) if (TERMINAL_TASK.has(e.status)) break;
        } catch (err) {
          if (!watch.aborted && !(err instanceof CoderClawError && err.code === "NOT_FOUND")) throw err;
        }
        if (timedOut) {
          await runtime.cancelTask(taskId).catch(() => false);
          return { outcome: "failed", error: `timed out after ${step.timeoutMs} ms` };
        }
        if (signal.aborted) throw new CoderClawError("CANCELLED", "stopped");
        const state = await runtime.getTaskState(taskId);
        if (state === null) return { outcome: "failed", error: `task ${taskId} is not known to the runtime` };
        if (TERMINAL_TASK.has(state.status)) return state.status === "completed" ? { outcome: "completed", output: state.output ?? "" } : { outcome: state.status as "failed" | "cancelled", error: state.error ?? state.status };
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      if (stop !== undefined) signal.removeEventListener("abort", stop);
    }
  }

  #settle(step: WorkflowStep, attempt: StepAttempt, ended: { outcome: "completed"; output: string } | { outcome: "failed" | "cancelled"; error: string }): void {
    if (this.#record.status !== "running") return;
    const r = this.#record.steps[step.id]!;
    attempt.outcome = ended.outcome;
    attempt.endedAt = this.#deps.now();
    if (ended.outcome === "completed") {
      r.status = "completed";
      r.output = ended.output;
    } else {
      attempt.error = ended.error;
      r.error = ended.error;
      if (attempt.n < step.retry.attempts && ended.outcome === "failed") {
        r.status = "retrying";
        r.retryAt = attempt.endedAt + backoffAfter(step.retry, attempt.n);
      } else r.status = "failed";
    }
    // Not waited for: the steps this lets start write their own start in the same store write.
    this.#note(step.id);
    this.pump(step.id);
  }

  /** End the workflow: running steps' tasks cancelled, the rest skipped, the end recorded. */
  #end(status: "completed" | "failed" | "cancelled", error: string | undefined): Promise<void> {
    if (this.#record.status !== "running") return Promise.resolve();
    this.#ending = this.#recordEnd(status, error);
    return this.#ending;
  }

  async #recordEnd(status: "completed" | "failed" | "cancelled", error: string | undefined): Promise<void> {
    this.#record.status = status;
    this.#record.endedAt = this.#deps.now();
    if (error !== undefined) this.#record.error = error;
    const changed: Record<string, StepRecord> = {};
    const cancels: Array<Promise<unknown>> = [];
    for (const [id, r] of Object.entries(this.#record.steps)) {
      if (r.status === "pending" || r.status === "retrying") {
        r.status = "skipped";
        delete r.retryAt;
        delete r.reason;
        changed[id] = r;
      } else if (r.status === "running") {
        r.status = "cancelled";
        const attempt = r.attempts[r.attempts.length - 1];
        if (attempt?.taskId !== undefined) cancels.push(this.#deps.runtime.cancelTask(attempt.taskId).catch(() => false));
        changed[id] = r;
      }
    }
    this.#controller.abort(RUN_OVER);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#disarm();
    // A completed end is what a restart would conclude again from the steps' tasks; a failed or cancelled one is not (see wait).
    if (status === "completed") {
      for (const w of this.#waiters.splice(0)) w(this.snapshot());
      // Its write (every step's record turned into JSON and an Automerge change) waits for the next turn, not the answer.
      await nextTurn();
    }
    try {
      await this.#write({ status, endedAt: this.#record.endedAt, ...(error !== undefined && { error }), steps: changed }, true);
    } catch (err) {
      this.#deps.onError(err as Error);
    }
    await Promise.all(cancels);
    this.#deps.onEnd();
    for (const w of this.#waiters.splice(0)) w(this.snapshot());
  }

  /**
   * Record `change`; resolves once it is durable. Changes go to the store
   * together once the workflow has been quiet {@link WRITE_QUIET_MS}, or
   * {@link WRITE_WITHIN_MS} after the first of them (a fan-out's steps starting,
   * a chain's steps ending and starting), each value as it stood when its change
   * was made, and writes go one after another. Nothing a
   * restart needs waits for the window: a try is found by its task's key (see
   * `recover`); an `urgent` change (an approval asked or decided, the end) is
   * written without waiting.
   */
  #write(change: WorkflowChange, urgent = false): Promise<void> {
    const pending = this.#changes();
    // Kept by reference and cloned once per flush: the newest state of a step is what gets written.
    const { steps, ...head } = change;
    Object.assign(pending.head, head);
    for (const id in steps) pending.steps.set(id, steps[id]!);
    const written = new Promise<void>((resolve, reject) => pending.waiters.push({ resolve, reject }));
    if (urgent) {
      this.#urgent = true;
      this.#wake?.();
    }
    this.#writes ??= this.#flush();
    return written;
  }

  /**
   * Record a step's newest state with the next write, as {@link #write} does,
   * with nobody waiting for it: a step's start, task and end are noted on the
   * path of every step, and a promise each cost more than the rest of it.
   */
  #note(stepId: string): void {
    const pending = this.#changes();
    pending.steps.set(stepId, this.#record.steps[stepId]!);
    pending.noted = true;
    this.#writes ??= this.#flush();
  }

  /** The changes waiting for the next write, the newest of them now. */
  #changes(): PendingWrite {
    this.#lastChangeAt = performance.now();
    return (this.#pending ??= { head: {}, steps: new Map(), waiters: [], noted: false });
  }

  async #flush(): Promise<void> {
    while (this.#pending !== undefined) {
      if (!this.#urgent) await this.#quiet();
      const { head, steps, waiters, noted } = this.#pending;
      this.#pending = undefined;
      this.#urgent = false;
      try {
        await this.#created;
        // The store reads the change before it answers, so the records it names go by reference.
        if (!this.#abandoned) await this.#deps.store.update(this.#record.id, { ...head, ...(steps.size > 0 && { steps: Object.fromEntries(steps) }) });
        for (const w of waiters) w.resolve();
      } catch (err) {
        // An abandoned run's record was never stored, and its start reported why.
        for (const w of waiters) if (this.#abandoned) w.resolve();
        else w.reject(err);
        if (noted && !this.#abandoned) this.#deps.onError(err as Error);
      }
    }
    this.#writes = undefined;
  }

  /**
   * Resolves once no change came for {@link WRITE_QUIET_MS}, or
   * {@link WRITE_WITHIN_MS} after it was called, or at once on an urgent
   * change. One timer at a time: a busy workflow's changes do not each set one.
   */
  #quiet(): Promise<void> {
    const deadline = performance.now() + WRITE_WITHIN_MS;
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const check = (): void => {
        const wait = Math.min(this.#lastChangeAt + WRITE_QUIET_MS, deadline) - performance.now();
        if (this.#urgent || wait <= 0) done();
        else timer = setTimeout(check, wait);
      };
      this.#wake = done;
      check();
    });
  }
}

/**
 * A record the caller may change without touching `record`: its definition,
 * which nothing changes once checked, is shared (a hundred steps' definition
 * cost more to copy than their progress).
 */
function copyRecord(record: WorkflowRecord): WorkflowRecord {
  const steps: Record<string, StepRecord> = {};
  for (const id in record.steps) steps[id] = copyStep(record.steps[id]!);
  return { ...record, input: typeof record.input === "string" ? record.input : { ...record.input }, steps };
}

/** A step's record copied by hand, field by field: a hundred steps copied at each answer cost several times more through structuredClone. */
function copyStep(r: StepRecord): StepRecord {
  const copy: StepRecord = { ...r, attempts: r.attempts.map((a) => ({ ...a })) };
  if (r.approval !== undefined) copy.approval = { ...r.approval, ...(r.approval.decision !== undefined && { decision: { ...r.approval.decision } }) };
  return copy;
}

/**
 * Why a run's signal aborts; nothing reads it but `aborted`. Given, so that
 * each run's end does not make a DOMException (with its stack) of its own.
 */
const RUN_OVER = new CoderClawError("CANCELLED", "the workflow run is over");

/** A controller whose signal every running step listens to: as many listeners as steps run at once. */
function abortableBy(): AbortController {
  const controller = new AbortController();
  setMaxListeners(Infinity, controller.signal);
  return controller;
}
