import { AgentUnavailableError, CoderClawError, NotFoundError } from "../contract/errors.js";
import type {
  StreamOptions,
  TaskEvent,
  TaskEventType,
  TaskListFilter,
  TaskPage,
  TaskPageFilter,
  TaskPlacement,
  TaskState,
  TaskStatus,
  TaskSubmitRequest,
  TaskUpdateEvent,
} from "../contract/types.js";
import type { AgentRegistry } from "../agents/executor.js";
import type { ProcessRecords } from "../agents/process-records.js";
import { followEvents, toUpdate } from "./event-stream.js";
import { startExecution, timeoutOf, type AbortCause, type ExecutionReports, type ExecutionSettings } from "./execution.js";
import { ExecutionEnvironment, type ExecutionEnvironmentOptions } from "./execution-environment.js";
import { copyState, newLiveTask, type LiveTask, type Outcome } from "./live-task.js";
import { DEFAULT_OUTPUT_HISTORY_BYTES, OutputBuffer } from "./output-buffer.js";
import { assertTransition, canTransition, isTerminal } from "./state-machine.js";
import { assertTaskId, DEFAULT_MAX_INPUT_BYTES } from "./submit-schema.js";
import type { TaskRecord } from "./task-document.js";
import { TaskPersistence } from "./task-persistence.js";
import { matchesPage, PAGE_SCAN, PAGE_SCAN_BATCH } from "./task-page.js";
import { approvedMark, askedMark, openGateIn, type ApprovalPolicy, type ApprovalVerdict, type OpenGate } from "./approval-gate.js";
import { takeIn, takeInForPlacement, type IntakeSettings } from "./task-intake.js";
import { lostFence, ownUnfinishedTasks } from "./task-recovery.js";
import type { TaskRepository } from "./task-repository.js";

/** History bytes past the output limit, for the marker of an agent that keeps to the limit itself. */
const AGENT_MARKER_ROOM = 4096;

export { toUpdate };
export type { AbortCause };

/** Dependencies and limits of a {@link TaskEngine}. */
export interface TaskEngineOptions extends ExecutionEnvironmentOptions {
  repository: TaskRepository;
  agents: AgentRegistry;
  /** Tasks executing at once; more wait in the queue. Default 10. */
  maxConcurrentTasks?: number;
  /** Per-task timeout when the agent declares none. Default 30 minutes. */
  defaultTimeoutMs?: number;
  /** Limit on a request's `input` in UTF-8 bytes. Default 1 MiB. */
  maxInputBytes?: number;
  /** Agent used when a request names none. Default `echo`. */
  defaultAgentId?: string;
  /** Recorded as `executorId` on every task this engine runs (the node's device id). */
  executorId?: string;
  /** How long shutdown waits for running tasks before interrupting them. Default 5 s. */
  shutdownGraceMs?: number;
  /** Output chunks arriving within this window become one history entry. Default 25 ms. */
  outputCoalesceMs?: number;
  /**
   * Progress reported without a message within this window becomes one history
   * entry with the latest value (a message is recorded at once, after what
   * waits). 0 records each at once. Default 50 ms.
   */
  progressCoalesceMs?: number;
  /**
   * Bytes of output a task's history keeps (and live subscribers receive);
   * past it, one marker. An agent that stops streaming at this limit itself (the
   * command agents do) gets room past it for its own marker. Default 1 MiB.
   */
  maxOutputBytes?: number;
  /**
   * A task lives as a write-ahead record until it ends or is this old; then its
   * Automerge document is written (and replicates). A short task thus costs one
   * document change instead of one per flush. Default 1 s.
   */
  materializeAfterMs?: number;
  /**
   * Tasks whose progress other nodes see elsewhere (a mesh node's attempts, which
   * their keeper mirrors into the task it replicates): these get their document
   * only when they end, not on ageing, so that a wave of attempts does not cost a
   * wave of documents mid-run as well. Default: none.
   */
  documentOnlyAtEnd?: (request: Readonly<TaskSubmitRequest>) => boolean;
  /**
   * False opens the engine for reading and queueing only: no recovery, and
   * submitted tasks stay pending for the next engine that runs tasks (the CLI uses
   * this when no node is running). Default true.
   */
  runTasks?: boolean;
  /** A stored task that cannot be read (its document is damaged): listing skips it and reports it here. */
  onUnreadable?: (taskId: string, error: Error) => void;
  /** Where executors record the process groups they start, handed to each execution. */
  processes?: ProcessRecords;
  /**
   * Tell an outcome before its write is durable, as the engine did before
   * durable completion: a crash can then take back a result already reported.
   * Only for measuring what durable completion costs (`bench:schedule` runs
   * both ways in one run); never in a node that serves anyone. Default false.
   */
  announceBeforeDurable?: boolean;
  /**
   * Asked for every task about to be queued here (submitted, or a held task
   * run here after all): a task it names waits `pending` for a decision
   * ({@link TaskEngine.decideApproval}) before it may start. Default: none does.
   */
  approvalPolicy?: ApprovalPolicy;
  /** Told of each task that starts to wait for a decision (those still waiting after a restart: see openApprovals). */
  onApprovalNeeded?: (gate: OpenGate) => void;
}

/** Counters for status reporting. */
export interface EngineCounters {
  activeTasks: number;
  queuedTasks: number;
  runningExecutions: number;
  totalTasks: number;
  healthy: boolean;
}

/** The moving part of a held task's placement, as its dispatcher reports it. */
export type PlacementUpdate = Pick<TaskPlacement, "reason" | "runsOn" | "attemptId" | "attempt" | "attemptSeq">;

/** How a held task ended where it ran, as its dispatcher reports it. */
export type HeldOutcome =
  | { status: "completed"; output?: string; data?: unknown }
  | { status: "failed"; error: string }
  | { status: "cancelled"; message: string };

/** An admission's outcome, settled either way so that it can be awaited beside the task's own write. */
const ok = (): { ok: true } => ({ ok: true });
const refused = (error: unknown): { ok: false; error: unknown } => ({ ok: false, error });

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The durable task engine: validates and accepts tasks, queues them under a
 * concurrency bound, runs them on agent executors with timeouts, cancellation
 * and pause/resume, records every change as history, and persists with group
 * commit. Live tasks are authoritative in memory; finished ones are read back from
 * the repository on demand, so memory does not grow with the number of tasks.
 *
 * The engine coordinates queueing and execution. Checking a submission
 * (task-intake), starting an executor (execution), writing and reading back
 * tasks ({@link TaskPersistence}), buffering output ({@link OutputBuffer}),
 * following a history (event-stream) and finding the tasks to take up after a
 * restart (task-recovery) each live in a module of their own.
 */
export class TaskEngine {
  private readonly live = new Map<string, LiveTask>();
  /** Tasks that wait for a decision before they may be queued. */
  private readonly gated = new Map<string, { task: LiveTask; gate: OpenGate }>();
  private readonly queue: LiveTask[] = [];
  private readonly persistence: TaskPersistence<LiveTask>;
  private readonly execution: ExecutionSettings;
  private readonly reports: ExecutionReports = {
    progress: (task, progress, message) => this.progress(task, progress, message),
    output: (task, chunk) => this.output(task, chunk),
    finished: (task, controller, outcome) => this.finish(task, controller, outcome),
    ready: (task) => {
      if (task.state.status === "planning") this.transition(task, "running", `running on agent ${task.agent!.info.id}`);
      return task.agent?.resumable === true ? Promise.resolve() : this.persistence.durable(task);
    },
  };
  private running = 0;
  private accepting = true;
  private total = 0;
  private readonly max: number;
  private readonly intake: IntakeSettings;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly eventListeners = new Set<(taskId: string, event: TaskEvent) => void>();

  private constructor(private readonly options: TaskEngineOptions) {
    this.max = options.runTasks === false ? 0 : (options.maxConcurrentTasks ?? 10);
    this.persistence = new TaskPersistence<LiveTask>({
      repository: options.repository,
      materializeAfterMs: options.materializeAfterMs ?? 1000,
      ...(options.documentOnlyAtEnd && { documentOnlyAtEnd: (task: LiveTask) => options.documentOnlyAtEnd!(task.request) }),
      release: (task) => {
        // An ended task whose executor has not returned yet holds a slot that finish() gives back.
        if (task.executing) return false;
        this.live.delete(task.state.id);
        return true;
      },
    });
    const environment = new ExecutionEnvironment(options);
    this.intake = {
      agents: options.agents,
      environment,
      maxInputBytes: options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
      defaultAgentId: options.defaultAgentId ?? "echo",
      executorId: options.executorId,
    };
    this.execution = { environment, defaultTimeoutMs: options.defaultTimeoutMs ?? 30 * 60 * 1000, processes: options.processes };
  }

  /**
   * Open an engine over its repository and recover: pending tasks are queued
   * again; tasks that were planning or running are restarted when their agent is
   * resumable and failed with `interrupted by restart` otherwise.
   */
  static async open(options: TaskEngineOptions): Promise<TaskEngine> {
    const engine = new TaskEngine(options);
    if (options.runTasks === false) engine.total = await options.repository.count();
    else await engine.recover();
    return engine;
  }

  /**
   * Validate, persist and queue a task. Resolves once the task is durable.
   *
   * `admitted` is a condition written alongside the task (a remote submission's
   * audit entry): the task is queued only once it resolves too; when it rejects,
   * the task is cancelled before it starts and `submit` rejects with its error.
   *
   * `submittedBy`: the device that sent the task from another node (the mesh's
   * task server says so); its processes run sandboxed, also after a restart.
   */
  async submit(input: unknown, options: { admitted?: Promise<unknown>; submittedBy?: string } = {}): Promise<TaskState> {
    if (!this.accepting) throw new CoderClawError("SHUTTING_DOWN", "the runtime is shutting down and accepts no new tasks");
    const { record, agent, workspace } = await takeIn(input, options.submittedBy, this.intake);
    const task = newLiveTask(record, agent, undefined);
    this.record(task, "created", "task accepted");
    this.live.set(task.state.id, task);
    this.total++;
    // Queued once its workspace is made too: tasks of a new session start together, not each after a wait of its own.
    const [, admission] = await Promise.all([this.persistence.durable(task), options.admitted?.then(ok, refused), workspace]);
    if (admission && !admission.ok) {
      this.transition(task, "cancelled", `not admitted: ${errorText(admission.error)}`);
      await this.persistence.durable(task);
      throw admission.error;
    }
    if (await this.gateIfNeeded(task, options.submittedBy)) return copyState(task.state);
    this.queue.push(task);
    this.pump();
    return copyState(task.state);
  }

  /**
   * When the approval policy names the task, keep it out of the queue, waiting
   * for a decision, and say so durably; true then. Recorded before anyone is
   * told, so a restart finds it waiting.
   */
  private async gateIfNeeded(task: LiveTask, submittedBy: string | undefined): Promise<boolean> {
    const need = this.options.approvalPolicy?.(task.request, submittedBy);
    if (need === undefined) return false;
    const askedAt = Date.now();
    const gate: OpenGate = { taskId: task.state.id, rule: need.rule, askedAt, deadline: askedAt + need.timeoutMs };
    this.gated.set(gate.taskId, { task, gate });
    this.record(task, "progress_updated", `awaiting approval (${need.rule})`, askedMark(gate));
    await this.persistence.durable(task);
    this.options.onApprovalNeeded?.({ ...gate });
    return true;
  }

  /** The tasks here that wait for a decision, oldest first. */
  openApprovals(): OpenGate[] {
    return [...this.gated.values()].map(({ gate }) => ({ ...gate })).sort((a, b) => a.askedAt - b.askedAt);
  }

  /**
   * Decide on a task that waits for approval: approved, it is queued (its
   * approval on record first); denied, it fails with the decision's reason.
   * False when the task does not wait for a decision (any more). Resolves once
   * the decision is durable.
   */
  async decideApproval(taskId: string, verdict: ApprovalVerdict): Promise<boolean> {
    const entry = this.gated.get(taskId);
    if (entry === undefined || entry.task.state.status !== "pending") return false;
    this.gated.delete(taskId);
    const { task } = entry;
    const why = verdict.reason === "" ? "" : `: ${verdict.reason}`;
    if (verdict.approved) {
      this.record(task, "progress_updated", `approved by ${verdict.by}${why}`, approvedMark(verdict));
      await this.persistence.durable(task);
      this.queue.push(task);
      this.pump();
    } else {
      this.transition(task, "planning", "approval denied");
      this.fail(task, `approval denied by ${verdict.by}${why}`);
      await this.persistence.durable(task);
    }
    return true;
  }

  /**
   * Store a task that a dispatcher places on some member (node/scheduling): it
   * is durable, listed and followed like any other, but this engine never starts
   * it unless handed it back with {@link TaskEngine.runHere}. It waits `pending`
   * (`placement.reason` says why, `placement.runsOn` where it is being placed); the dispatcher reports where it goes with
   * {@link TaskEngine.placeHeld}, {@link TaskEngine.advanceHeld} and
   * {@link TaskEngine.mirrorHeld}, and ends it with {@link TaskEngine.concludeHeld}.
   * `id`, when given, is the task's id, minted for this node beforehand (the
   * dispatcher names the task in its first attempt before storing it).
   * Resolves once the task is durable.
   */
  async hold(input: unknown, placement: TaskPlacement, message: string, id?: string): Promise<TaskState> {
    if (!this.accepting) throw new CoderClawError("SHUTTING_DOWN", "the runtime is shutting down and accepts no new tasks");
    const record = takeInForPlacement(input, placement, this.intake, id);
    const task = newLiveTask(record, undefined, undefined);
    task.delegated = true;
    this.record(task, "created", `task accepted; ${message}`);
    this.live.set(task.state.id, task);
    this.total++;
    await this.persistence.durable(task);
    return copyState(task.state);
  }

  /** The held tasks that have not ended (after a restart: those left by the last run), oldest first. */
  heldTasks(): TaskState[] {
    const out: TaskState[] = [];
    for (const t of this.live.values()) if (t.delegated && !isTerminal(t.state.status)) out.push(copyState(t.state));
    return out.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1));
  }

  /** The request a held task was submitted with. */
  heldRequest(taskId: string): TaskSubmitRequest {
    return { ...this.requireHeld(taskId).request };
  }

  /** Record where a held task stands (why it waits, where it runs); resolves once durable. No entry when nothing changed. */
  async placeHeld(taskId: string, update: PlacementUpdate, message?: string, data?: unknown): Promise<void> {
    const task = this.requireHeld(taskId);
    const placement: TaskPlacement = { ...task.state.placement };
    for (const k of ["reason", "runsOn", "attemptId", "attempt", "attemptSeq"] as const) {
      if (k in update) {
        if (update[k] === undefined) delete placement[k];
        else (placement as Record<string, unknown>)[k] = update[k];
      }
    }
    const same = (["reason", "runsOn", "attemptId", "attempt"] as const).every((k) => placement[k] === task.state.placement?.[k]);
    if (same && message === undefined) return;
    task.state.placement = placement;
    this.record(task, "progress_updated", message ?? placement.reason, data);
    await this.persistence.durable(task);
  }

  /** Move a held task on (to planning, running or waiting) as its attempt does; resolves once durable. A move the lifecycle forbids is skipped. */
  async advanceHeld(taskId: string, to: "planning" | "running" | "waiting", message: string, data?: unknown): Promise<void> {
    const task = this.requireHeld(taskId);
    if (to === "running" && task.state.status === "pending") this.transition(task, "planning", message);
    if (!canTransition(task.state.status, to)) return;
    this.transition(task, to, message, data);
    await this.persistence.durable(task);
  }

  /**
   * Copy an event of a held task's attempt into its history: output, progress,
   * and moves between running and waiting. False when the task is no longer
   * held here (it was cancelled meanwhile): its attempt is no longer wanted.
   */
  mirrorHeld(taskId: string, event: TaskEvent): boolean {
    const task = this.live.get(taskId);
    if (task === undefined || !task.delegated || isTerminal(task.state.status)) return false;
    // Where the copy stands, written with what it copies: a follower taken up again after a restart resumes after it.
    task.state.placement = { ...task.state.placement, attemptSeq: event.seq };
    if (event.type === "output_added" && event.message !== undefined) this.record(task, "output_added", event.message);
    else if (event.type === "progress_updated" && event.progress !== undefined && task.state.status === "running") this.progress(task, event.progress, event.message);
    else if (event.type === "progress_updated" && event.message !== undefined && task.state.status === "pending") {
      // The attempt waits where it was placed (for a slot, or an approver's decision): its word is why this task waits.
      task.state.placement = { ...task.state.placement, reason: event.message };
      this.record(task, "progress_updated", event.message);
    } else if (event.type === "status_changed" && event.status === "running" && task.state.status === "pending") {
      const placement = { ...task.state.placement };
      delete placement.reason;
      task.state.placement = placement;
      this.transition(task, "planning", event.message ?? "running");
      this.transition(task, "running", event.message ?? "running", event.data);
    }
    else if (event.type === "status_changed" && (event.status === "running" || event.status === "waiting") && task.state.status !== event.status && canTransition(task.state.status, event.status)) {
      this.transition(task, event.status, event.message ?? event.status, event.data);
    }
    return true;
  }

  /** End a held task with its attempt's outcome; resolves with its state once durable (and only then is the outcome told). */
  async concludeHeld(taskId: string, outcome: HeldOutcome): Promise<TaskState> {
    const task = this.requireHeld(taskId);
    if (outcome.status === "cancelled") {
      this.transition(task, "cancelled", outcome.message);
    } else {
      if (task.state.status === "pending") this.transition(task, "planning", "placing");
      if (outcome.status === "completed") {
        if (task.state.status !== "running") this.transition(task, "running", "running");
        if (outcome.output !== undefined) task.state.output = outcome.output;
        task.state.progress = 100;
        this.transition(task, "completed", "completed", outcome.data);
      } else {
        this.fail(task, outcome.error);
      }
    }
    await this.persistence.durable(task);
    return copyState(task.state);
  }

  /**
   * Run a held task here after all, as if submitted here: false when its agent
   * is missing or unavailable here. A task that has not started queues behind
   * the tasks already queued; one whose attempt elsewhere was lost (`waiting`)
   * starts at once if a slot is free (false otherwise), for the lifecycle has no
   * way back to `pending` and a queued `waiting` task would read as paused.
   */
  async runHere(taskId: string): Promise<boolean> {
    const task = this.requireHeld(taskId);
    const agent = this.options.agents.get(task.state.agentId ?? this.intake.defaultAgentId);
    const status = task.state.status;
    if (agent === undefined || !(await agent.availability()).available || !task.delegated) return false;
    if (task.state.status !== status || (status !== "pending" && status !== "waiting") || (status === "waiting" && (this.running >= this.max || !this.accepting))) return false;
    task.delegated = false;
    task.agent = agent;
    const placement: TaskPlacement = { ...task.state.placement };
    delete placement.reason;
    if (this.options.executorId !== undefined) placement.runsOn = this.options.executorId;
    task.state.placement = placement;
    this.record(task, "progress_updated", "placed on this node");
    if (status === "waiting") {
      this.running++;
      this.transition(task, "running", `running on agent ${agent.info.id}`);
      this.execute(task);
    }
    await this.persistence.durable(task);
    if (status === "pending" && !(await this.gateIfNeeded(task, undefined))) {
      this.queue.push(task);
      this.pump();
    }
    return true;
  }

  /**
   * Have `guard` consulted before `taskId` is recorded completed: when it gives
   * a reason, the task fails with it instead. The mesh uses it for tasks whose
   * submitter may already have re-placed them elsewhere (fencing).
   */
  guardOutcome(taskId: string, guard: () => string | undefined): void {
    const task = this.live.get(taskId);
    if (task !== undefined && !isTerminal(task.state.status)) task.outcomeGuard = guard;
  }

  /** Stop a task that must not finish here (its lease is lost), failing it with `reason`. False when it had already ended. */
  async supersede(taskId: string, reason: string): Promise<boolean> {
    const task = this.live.get(taskId);
    if (task === undefined || isTerminal(task.state.status)) return false;
    const at = this.queue.indexOf(task);
    if (at >= 0) this.queue.splice(at, 1);
    this.gated.delete(taskId);
    if (task.state.status === "pending") this.transition(task, "planning", "stopping");
    this.fail(task, reason);
    task.controller?.abort("cancelled" satisfies AbortCause);
    await this.persistence.durable(task);
    return true;
  }

  /** Slots free for new work here now: the concurrency limit less what runs and waits in the local queue. */
  freeSlots(): number {
    return Math.max(0, this.max - this.running - this.queue.length);
  }

  /** The concurrency limit: tasks executing at once here. */
  get slots(): number {
    return this.max;
  }

  /** Current state, or null when no task has this id. */
  async getTask(taskId: string): Promise<TaskState | null> {
    assertTaskId(taskId);
    const live = this.live.get(taskId);
    if (live) {
      await this.announced(live);
      return copyState(live.state);
    }
    const stored = await this.persistence.load(taskId);
    return stored ? copyState(stored.state) : null;
  }

  /**
   * The task `submittedBy` submitted here under idempotency key `key`
   * (`metadata.idempotencyKey`), once stored; null when there is none.
   */
  async findByKey(submittedBy: string, key: string): Promise<TaskState | null> {
    const id = this.options.repository.taskIdForKey(submittedBy, key);
    return id === undefined ? null : this.getTask(id);
  }

  /** The request a task was submitted with. */
  async getTaskRequest(taskId: string): Promise<TaskSubmitRequest> {
    const record = await this.requireRecord(taskId);
    return { ...record.request };
  }

  /** Full history of a task, oldest first. */
  async getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    const record = await this.requireRecord(taskId);
    return record.events.map((e) => ({ ...e }));
  }

  /** Tasks newest first: live ones from memory, the rest from storage via the indexes. */
  async listTasks(filter: TaskListFilter = {}): Promise<TaskState[]> {
    await this.persistence.drain();
    const out: TaskState[] = [];
    for (const id of await this.options.repository.listIds(filter)) {
      const state = await this.listedState(id);
      if (state === undefined) continue;
      if (filter.status !== undefined && state.status !== filter.status) continue;
      if (filter.sessionId !== undefined && state.sessionId !== filter.sessionId) continue;
      out.push(state);
    }
    return out;
  }

  /**
   * One page of tasks newest first, matching `filter` and `accept`. Looks at no
   * more than {@link PAGE_SCAN} tasks (or `limit` when larger), so a filter that
   * few tasks match costs a bounded amount per page; `next` then says where to go on.
   */
  async listTaskPage(filter: TaskPageFilter, accept: (task: TaskState) => boolean = () => true): Promise<TaskPage> {
    await this.persistence.drain();
    const limit = filter.limit ?? 100;
    const scan = Math.max(limit, PAGE_SCAN);
    const tasks: TaskState[] = [];
    let before = filter.before;
    let scanned = 0;
    while (tasks.length < limit && scanned < scan) {
      const found = await this.options.repository.scanIds({ ...filter, ...(before === undefined ? {} : { before }) }, Math.min(PAGE_SCAN_BATCH, scan - scanned));
      for (const { id, position } of found) {
        scanned += 1;
        before = position;
        const state = await this.listedState(id);
        if (state !== undefined && matchesPage(state, filter) && accept(state)) tasks.push(state);
        if (tasks.length === limit) break;
      }
      if (found.length < PAGE_SCAN_BATCH && tasks.length < limit) return { tasks };
    }
    if (before === undefined) return { tasks };
    const older = await this.options.repository.scanIds({ ...filter, before }, 1);
    return older.length === 0 ? { tasks } : { tasks, next: before };
  }

  /** A listed task's state: live from memory, else stored; undefined when gone or unreadable. */
  private async listedState(id: string): Promise<TaskState | undefined> {
    // Checked per id after the index read: a task leaves memory only once fully persisted.
    const live = this.live.get(id);
    let stored: TaskRecord | undefined;
    try {
      stored = live ? live : await this.persistence.load(id);
    } catch (err) {
      // One unreadable document (a replica some other node wrote badly) must not hide every other task.
      if (!(err instanceof CoderClawError && err.code === "STORAGE_CORRUPT")) throw err;
      this.options.onUnreadable?.(id, err);
      return undefined;
    }
    return stored ? copyState(stored.state) : undefined;
  }

  /**
   * Cancel a task: a queued one never starts, a running one is cancelled at once
   * and its executor aborted. False when the task had already finished.
   */
  async cancel(taskId: string): Promise<boolean> {
    const task = await this.requireLive(taskId);
    if (!task) return false;
    const at = this.queue.indexOf(task);
    if (at >= 0) this.queue.splice(at, 1);
    this.gated.delete(taskId);
    this.transition(task, "cancelled", "cancelled by request");
    task.controller?.abort("cancelled" satisfies AbortCause);
    await this.persistence.durable(task);
    return true;
  }

  /** Pause a running task (to `waiting`); its executor halts at its next checkpoint. */
  async pause(taskId: string): Promise<TaskState> {
    const task = await this.requireLive(taskId);
    if (!task) throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} has already finished`);
    this.transition(task, "waiting", "paused by request");
    await this.persistence.durable(task);
    return copyState(task.state);
  }

  /** Resume a paused task. */
  async resume(taskId: string): Promise<TaskState> {
    const task = await this.requireLive(taskId);
    if (!task) throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} has already finished`);
    this.transition(task, "running", "resumed by request");
    for (const w of task.checkpointWaiters.splice(0)) w();
    if (task.held) {
      const held = task.held;
      delete task.held;
      this.settle(task, held);
    } else if (task.orphaned) {
      this.restartOrphan(task, "resumed after restart");
    }
    await this.persistence.durable(task);
    return copyState(task.state);
  }

  /**
   * Updates of a task: its history after `afterSeq`, then live updates, ending
   * after a terminal status. A task that has already finished replays and ends.
   */
  async *stream(taskId: string, options: StreamOptions = {}): AsyncGenerator<TaskUpdateEvent> {
    for await (const e of this.streamEvents(taskId, options)) yield toUpdate(taskId, e);
  }

  /** Like {@link TaskEngine.stream}, as full history entries (with their type). */
  async *streamEvents(taskId: string, options: StreamOptions = {}): AsyncGenerator<TaskEvent> {
    assertTaskId(taskId);
    const task = this.live.get(taskId);
    if (task) {
      yield* followEvents(task, options.afterSeq ?? 0, options.signal);
      return;
    }
    const stored = await this.requireRecord(taskId);
    for (const e of stored.events) if (e.seq > (options.afterSeq ?? 0)) yield { ...e };
  }

  /** Every history entry of every task, as it happens (an outcome once it is durable). Returns an unsubscribe function. */
  onEvent(listener: (taskId: string, event: TaskEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Counters for status reports. */
  counters(): EngineCounters {
    let active = 0;
    for (const t of this.live.values()) if (!isTerminal(t.state.status)) active++;
    return { activeTasks: active, queuedTasks: this.queue.length, runningExecutions: this.running, totalTasks: this.total, healthy: this.persistence.healthy };
  }

  /**
   * Resolves when no task is queued or executing, everything is durable and
   * every ended task has its document (tests and benchmarks use it).
   */
  async idle(): Promise<void> {
    if (this.running > 0 || this.queue.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.persistence.drain();
  }

  /**
   * Stop accepting tasks, give running ones `shutdownGraceMs` to finish, then
   * interrupt the rest: resumable ones stay running in storage and restart at the
   * next start, others fail with `interrupted by shutdown`. Queued tasks stay
   * pending. Everything is flushed before this resolves.
   */
  async shutdown(): Promise<void> {
    if (!this.accepting) return this.persistence.drain();
    this.accepting = false;
    this.queue.length = 0;
    const grace = this.options.shutdownGraceMs ?? 5000;
    if (this.running > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, grace))),
      ]);
      clearTimeout(timer);
    }
    for (const task of this.live.values()) {
      if (!task.executing) continue;
      task.controller?.abort("shutdown" satisfies AbortCause);
      if (!task.agent?.resumable && !isTerminal(task.state.status)) {
        this.fail(task, "interrupted by shutdown");
      }
    }
    for (const task of this.live.values()) {
      clearTimeout(task.timer);
      task.output?.flush();
    }
    await this.persistence.drain();
    this.persistence.stop();
  }

  // ---- internals ----

  private async recover(): Promise<void> {
    const repo = this.options.repository;
    await repo.replayWriteAhead();
    this.total = await repo.count();
    for await (const record of ownUnfinishedTasks(repo, this.options.executorId)) {
      const agent = record.state.agentId === undefined ? undefined : this.options.agents.get(record.state.agentId);
      const task = newLiveTask(record, agent, copyState(record.state));
      this.live.set(record.state.id, task);
      const placement = record.state.placement;
      if (placement !== undefined && (placement.runsOn === undefined || placement.runsOn !== this.options.executorId)) {
        // Placed elsewhere (or still waiting): its dispatcher takes it up again.
        task.delegated = true;
        continue;
      }
      const superseded = lostFence(record);
      if (superseded !== undefined) {
        if (record.state.status === "pending") this.transition(task, "planning", "stopping");
        this.fail(task, superseded);
        continue;
      }
      switch (record.state.status) {
        case "pending": {
          const gate = openGateIn(record.state.id, record.events);
          if (gate === undefined) this.queue.push(task);
          // Its approver learns of it from openApprovals(), asked once the node is up.
          else this.gated.set(gate.taskId, { task, gate });
          break;
        }
        case "planning":
          // Its agent never acted (an agent starts only once its task is on record as running): it starts again.
          if (agent !== undefined) {
            this.queue.push(task);
            break;
          }
          this.fail(task, `interrupted by restart (agent ${record.state.agentId ?? "?"} is not available here)`);
          break;
        case "waiting":
          task.orphaned = true;
          break;
        default:
          if (agent?.resumable) {
            this.restartOrphan(task, "resumed after restart");
          } else {
            this.fail(task, agent ? "interrupted by restart" : `interrupted by restart (agent ${record.state.agentId ?? "?"} is not available here)`);
          }
      }
    }
    this.pump();
  }

  /** Start an executor for a recovered task whose previous run was cut off. */
  private restartOrphan(task: LiveTask, message: string): void {
    task.orphaned = false;
    if (!task.agent?.resumable) {
      this.fail(task, "interrupted by restart");
      return;
    }
    if (task.state.status === "planning") this.transition(task, "running", message);
    else this.record(task, "progress_updated", message);
    if (!task.executing) {
      // Restarted work takes a slot even beyond the limit: it was admitted before the restart.
      this.running++;
      this.execute(task);
    }
  }

  private pump(): void {
    while (this.running < this.max && this.queue.length > 0 && this.accepting) {
      const task = this.queue.shift()!;
      if (task.state.status !== "pending" && task.state.status !== "planning") continue;
      this.running++;
      this.start(task);
    }
    if (this.running === 0 && this.queue.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private start(task: LiveTask): void {
    if (task.state.status === "pending") this.transition(task, "planning", "preparing workspace");
    try {
      const agent = task.agent;
      if (!agent) throw new AgentUnavailableError(task.state.agentId ?? "?", "no such agent on this node", "UNKNOWN_AGENT");
      // A task that carries code runs once its tree is in place (see ExecutionReports.ready).
      if (this.execution.environment.workspaces?.carriesCode(task.request) !== true) this.transition(task, "running", `running on agent ${agent.info.id}`);
      this.execute(task);
    } catch (err) {
      this.fail(task, (err as Error).message);
      this.running--;
      this.pump();
    }
  }

  private execute(task: LiveTask): void {
    // An agent that cannot resume acts only once its task is on record as running: a crash before that
    // write leaves it pending and it runs once after the restart; a crash after it leaves it running, and
    // recovery fails it as interrupted instead of running its side effects a second time.
    startExecution(task, this.execution, this.reports, task.agent?.resumable === true ? undefined : this.persistence.durable(task));
  }

  private finish(task: LiveTask, controller: AbortController, outcome: Outcome): void {
    clearTimeout(task.timer);
    task.executing = false;
    for (const w of task.checkpointWaiters.splice(0)) w();
    this.running--;
    const cause = controller.signal.aborted ? (controller.signal.reason as AbortCause) : undefined;
    if (cause === "shutdown") {
      // Left as it is in storage: recovery decides at the next start.
    } else if (cause === "timeout" && !isTerminal(task.state.status)) {
      this.fail(task, `timed out after ${timeoutOf(task.agent, this.execution)} ms`);
    } else if (!isTerminal(task.state.status)) {
      if (task.state.status === "waiting") task.held = outcome;
      else this.settle(task, outcome);
    }
    this.pump();
  }

  private settle(task: LiveTask, outcome: Outcome): void {
    task.output?.flush();
    const veto = outcome.ok ? task.outcomeGuard?.() : undefined;
    if (veto !== undefined) {
      this.fail(task, veto);
    } else if (outcome.ok) {
      task.state.output = outcome.result.output;
      task.state.progress = 100;
      this.transition(task, "completed", "completed", outcome.result.data);
    } else {
      const err = outcome.error;
      this.fail(task, err instanceof Error ? err.message : typeof err === "string" ? err : "executor failed");
    }
  }

  private fail(task: LiveTask, message: string): void {
    task.output?.flush();
    task.state.error = message;
    this.record(task, "error_set", message);
    this.transition(task, "failed", message);
  }

  private progress(task: LiveTask, progress: number, message?: string): void {
    if (task.state.status !== "running") return;
    const p = Math.max(0, Math.min(100, Number.isFinite(progress) ? progress : 0));
    if (message !== undefined) {
      this.flushProgress(task);
      task.state.progress = p;
      this.record(task, "progress_updated", message, undefined, p);
      return;
    }
    if (p === task.state.progress) return;
    task.state.progress = p;
    const windowMs = this.options.progressCoalesceMs ?? 50;
    if (windowMs === 0) return void this.record(task, "progress_updated", undefined, undefined, p);
    // A burst of bare numbers costs one history entry (and one write) per window, with the latest value.
    if (task.progressPending === undefined) {
      const timer = setTimeout(() => this.flushProgress(task), windowMs);
      timer.unref();
      task.progressPending = { value: p, timer };
    } else {
      task.progressPending.value = p;
    }
  }

  /** Record the bare progress value that waits for its window, if one does. */
  private flushProgress(task: LiveTask): void {
    const pending = task.progressPending;
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    delete task.progressPending;
    if (task.state.status === "running") this.record(task, "progress_updated", undefined, undefined, pending.value);
  }

  private output(task: LiveTask, chunk: string): void {
    if (isTerminal(task.state.status)) return;
    task.output ??= new OutputBuffer(this.options.outputCoalesceMs ?? 25, (text) => this.record(task, "output_added", text), (this.options.maxOutputBytes ?? DEFAULT_OUTPUT_HISTORY_BYTES) + AGENT_MARKER_ROOM);
    task.output.add(chunk);
  }

  private transition(task: LiveTask, to: TaskStatus, message: string, data?: unknown): void {
    assertTransition(task.state.id, task.state.status, to);
    // What progress waits for its window goes on record before the task moves on.
    this.flushProgress(task);
    task.state.status = to;
    const now = new Date();
    if (to === "running" && task.state.startedAt === undefined) task.state.startedAt = now;
    if (isTerminal(to)) {
      task.state.completedAt = now;
      clearTimeout(task.timer);
      task.output?.stopTimer();
    }
    this.record(task, "status_changed", message, data);
  }

  private record(task: LiveTask, type: TaskEventType, message?: string, data?: unknown, progress?: number): void {
    const event: TaskEvent = { seq: task.events.length + 1, type, timestamp: new Date(), status: task.state.status };
    if (message !== undefined) event.message = message;
    if (progress !== undefined) event.progress = progress;
    else if (task.state.progress !== undefined && type === "status_changed") event.progress = task.state.progress;
    if (data !== undefined) event.data = data;
    task.events.push(event);
    this.persistence.changed(task);
    const announce = (): void => {
      task.announced = event.seq;
      for (const l of task.listeners) l(event);
      for (const l of this.eventListeners) l(task.state.id, event);
    };
    // A result once reported survives any crash: an outcome is told to anyone (streams, the mesh, readers) only once
    // it is durable. Should its write fail, the engine is unhealthy and the outcome is told all the same, rather than never.
    if (type === "status_changed" && isTerminal(event.status) && this.options.announceBeforeDurable !== true) void this.persistence.durable(task).then(announce, announce);
    else announce();
  }

  /** Wait until what the task tells is durable: a reader never sees an outcome a crash could still take back. */
  private async announced(task: LiveTask): Promise<void> {
    if (task.announced < task.events.length && this.options.announceBeforeDurable !== true) await this.persistence.durable(task).catch(() => undefined);
  }

  private async requireRecord(taskId: string): Promise<TaskRecord> {
    assertTaskId(taskId);
    const live = this.live.get(taskId);
    if (live) {
      await this.announced(live);
      return live;
    }
    const stored = await this.persistence.load(taskId);
    if (!stored) throw new NotFoundError("task", taskId);
    return stored;
  }

  /** A held task that has not ended: INVALID_TRANSITION otherwise (NOT_FOUND when it is not live here). */
  private requireHeld(taskId: string): LiveTask {
    const task = this.live.get(taskId);
    if (task === undefined) throw new NotFoundError("task", taskId);
    if (!task.delegated || isTerminal(task.state.status)) throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} is not held for placement (or has ended)`);
    return task;
  }

  /** The live task, undefined when it has finished; NOT_FOUND when it never existed. */
  private async requireLive(taskId: string): Promise<LiveTask | undefined> {
    assertTaskId(taskId);
    const live = this.live.get(taskId);
    if (live && !isTerminal(live.state.status)) return live;
    if (live) return undefined;
    const stored = await this.persistence.load(taskId);
    if (!stored) throw new NotFoundError("task", taskId);
    return undefined;
  }
}
