/**
 * The runtime contract, compatible with the upstream CoderClaw types.
 *
 * Field names follow upstream so existing callers keep working; fields added for
 * the mesh are optional and never rename what upstream has.
 */

/** Lifecycle of a task. `completed`, `failed` and `cancelled` are terminal. */
export type TaskStatus =
  | "pending"
  | "planning"
  | "running"
  | "waiting"
  | "completed"
  | "failed"
  | "cancelled";

/** All statuses, in lifecycle order. */
export const TASK_STATUSES: readonly TaskStatus[] = [
  "pending",
  "planning",
  "running",
  "waiting",
  "completed",
  "failed",
  "cancelled",
];

/** Statuses after which a task never changes again. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>([
  "completed",
  "failed",
  "cancelled",
]);

/** Deployment modes of the runtime. */
export type RuntimeMode = "local-only" | "remote-enabled" | "distributed-cluster";

/** What a caller sends to start a task. */
export interface TaskSubmitRequest {
  agentId?: string;
  description: string;
  input: string;
  model?: string;
  thinking?: string;
  sessionId?: string;
  parentTaskId?: string;
  metadata?: Record<string, unknown>;
}

/** The observable state of one task. */
export interface TaskState {
  id: string;
  status: TaskStatus;
  agentId?: string;
  description: string;
  sessionId?: string;
  parentTaskId?: string;
  createdAt: Date;
  startedAt?: Date;
  completedAt?: Date;
  output?: string;
  error?: string;
  progress?: number;
  metadata?: Record<string, unknown>;
  /** Mesh addition: the device id (PeerId) of the node that executes the task. */
  executorId?: string;
  /** Mesh addition: the device id of the node that submitted the task, when it came from another node. */
  submittedBy?: string;
  /** Mesh addition: how a task submitted through the mesh is placed (see {@link TaskPlacement}). */
  placement?: TaskPlacement;
}

/** One update on a task's stream. */
export interface TaskUpdateEvent {
  taskId: string;
  status: TaskStatus;
  timestamp: Date;
  message?: string;
  progress?: number;
  data?: unknown;
  /** Mesh addition: position of this update in the task's history, from 1, for resumable streams. */
  seq?: number;
}

/** Kinds of entries in a task's history. */
export type TaskEventType =
  | "created"
  | "status_changed"
  | "progress_updated"
  | "output_added"
  | "error_set";

/** One entry of a task's full history. */
export interface TaskEvent {
  /** Position in the task's history, from 1. */
  seq: number;
  type: TaskEventType;
  timestamp: Date;
  status: TaskStatus;
  message?: string;
  progress?: number;
  data?: unknown;
}

/** An agent that can run tasks. */
export interface AgentInfo {
  id: string;
  name: string;
  description: string;
  capabilities: string[];
  model?: string;
  thinking?: string;
  /** Addition: false when configured but not runnable here now. */
  available?: boolean;
  /** Addition: why the agent cannot run here, when `available` is false. */
  unavailableReason?: string;
}

/** A skill an agent may use. */
export interface SkillInfo {
  id: string;
  name: string;
  description: string;
  version: string;
  enabled: boolean;
  /** Addition: the missing requirement when `enabled` is false. */
  disabledReason?: string;
  /** Addition: skills that can change the machine (run commands, write files). */
  dangerous?: boolean;
}

/** Health and counters of a runtime. */
export interface RuntimeStatus {
  version: string;
  uptime: number;
  activeTasks: number;
  totalTasks: number;
  mode: RuntimeMode;
  healthy: boolean;
}

/** Filter for listing tasks. */
export interface TaskListFilter {
  status?: TaskStatus;
  sessionId?: string;
  /** Most recent first; at most this many. */
  limit?: number;
}

/**
 * Filter of one page of a task listing. Pages go from newest to oldest; a page
 * may hold fewer than `limit` tasks (a filter the indexes cannot answer is
 * checked on each task, and one page looks at a bounded number of them), so
 * only its `next` says whether older tasks remain.
 */
export interface TaskPageFilter extends TaskListFilter {
  /** Only tasks older than this position: a page's `next` (`<createdAt ms, 15 digits>:<task id>`). */
  before?: string;
  agentId?: string;
  /** Part of the peer id of the device the task runs on (its placement's `runsOn`, else its `executorId`). */
  executor?: string;
}

/** One page of a task listing, newest first. */
export interface TaskPage {
  tasks: TaskState[];
  /** Where the next (older) page starts; absent when no older task is left. */
  next?: string;
}

/** Options for streaming updates. */
export interface StreamOptions {
  /** Resume after this sequence number (exclusive): updates with seq <= afterSeq are skipped. */
  afterSeq?: number;
  /** Stop streaming when this signal aborts. */
  signal?: AbortSignal;
}

/** Route every runtime accepts: let it decide where the task runs (in a mesh, by capability, trust, load and latency). */
export const ROUTE_AUTO = "auto";
/** Route every runtime accepts: run the task on the node that receives the submission. */
export const ROUTE_LOCAL = "local";
/** Longest route accepted, in characters: a peer id is about 52. */
export const MAX_ROUTE_LENGTH = 128;

/**
 * How to submit a task, apart from the task itself.
 *
 * An adapter that cannot honour an option refuses the submission with a
 * `CoderClawError` `INVALID_INPUT` whose `field` is the option's name (`route`)
 * and whose message says what it accepts, before anything is stored.
 */
export interface SubmitOptions {
  /**
   * Where to run the task:
   * - absent: the runtime's default (`auto`, unless a mesh node was built to pin its work to one peer);
   * - `auto` ({@link ROUTE_AUTO}): wherever the runtime decides; a mesh routes by capability, trust, load and latency;
   * - `local` ({@link ROUTE_LOCAL}): on the node that receives the submission;
   * - anything else: the peer id of the mesh member to run it, accepted only by a runtime
   *   that is a mesh node (directly, over its control socket or over its HTTP API);
   *   in-process runtimes refuse it.
   *
   * At most {@link MAX_ROUTE_LENGTH} characters.
   */
  route?: string;
  /**
   * Mesh addition: among tasks waiting on the same submitter, higher goes first;
   * equal priorities go in submission order. An integer from
   * {@link MIN_PRIORITY} to {@link MAX_PRIORITY}. Default 0.
   */
  priority?: number;
  /** Mesh addition: labels and resources the node that runs the task must have. */
  requires?: TaskRequirements;
  /**
   * Mesh addition: a task that has not started on some node by then fails with
   * a clear error instead of waiting longer.
   */
  deadline?: Date;
  /**
   * Mesh addition: `false` refuses the task at once (AGENT_UNAVAILABLE) when no
   * member can start it now, as a runtime without a queue would. Default `true`:
   * the task is stored as `pending` with the reason it waits, and starts when a
   * capable member has a free slot.
   */
  waitForPeer?: boolean;
  /**
   * Mesh addition: run the task on a snapshot of this directory (absolute, on
   * the node that receives the submission): in a git repository its HEAD plus
   * staged, unstaged and untracked changes, elsewhere its files minus
   * `.coderclawignore`. The executor works in its own copy; what changed comes
   * back as a patch (`task diff`, `task apply`). Refused over the HTTP API,
   * which must not read the node's files for a remote caller.
   */
  repo?: string;
  /** Mesh addition, with `repo`: files of the workspace (glob patterns) brought back with the result. */
  artifacts?: string[];
  /**
   * Mesh addition, with `repo`: the workspace is a git repository whose HEAD
   * holds the snapshot, and the commits the agent makes there come back as a
   * series (`task diff --commits`, `task apply --commits`), besides the patch
   * of everything it changed.
   */
  commits?: boolean;
}

/** Lowest {@link SubmitOptions.priority}. */
export const MIN_PRIORITY = -100;
/** Highest {@link SubmitOptions.priority}. */
export const MAX_PRIORITY = 100;

/**
 * Mesh addition: what a task needs of the node that runs it. A node qualifies
 * when it has every label and, for each resource, at least the amount asked,
 * as its configuration declares them (`labels`, `resources`).
 */
export interface TaskRequirements {
  /** Each at most 64 characters of `[A-Za-z0-9._-]`; at most 32. */
  labels?: string[];
  /** Resource name (as labels) to the least amount needed, a finite number >= 0; at most 32. */
  resources?: Record<string, number>;
}

/**
 * Mesh addition: where a task submitted through the mesh stands. The node that
 * took the submission keeps the task (its id, its history, its outcome) and
 * runs it as an attempt on the member it places it on; a re-routed task keeps
 * its id and gets a new attempt.
 */
export interface TaskPlacement {
  /** While the task is `pending`: why it waits (`waiting for a member with agent X`, `infeasible: ...`, `waiting for a free slot`). */
  reason?: string;
  /** The member running (or that ran) the current attempt. */
  runsOn?: string;
  /** The current attempt's task id on that member. */
  attemptId?: string;
  /** The current attempt's number, from 1. */
  attempt?: number;
  /** The last event of the current attempt copied into this task's history (its sequence number there). */
  attemptSeq?: number;
  priority?: number;
  requires?: TaskRequirements;
  deadline?: Date;
  /** The member the submission pinned the task to (its route), when it named one. */
  route?: string;
}

/** The contract every runtime offers, whatever its deployment mode. */
export interface RuntimeInterface {
  submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState>;
  getTaskState(taskId: string): Promise<TaskState | null>;
  streamTaskUpdates(taskId: string, options?: StreamOptions): AsyncIterable<TaskUpdateEvent>;
  cancelTask(taskId: string): Promise<boolean>;
  listAgents(): Promise<AgentInfo[]>;
  listSkills(): Promise<SkillInfo[]>;
  getStatus(): Promise<RuntimeStatus>;
}

/**
 * What `CoderClawRuntime` needs from a transport: the runtime contract minus the
 * mode, plus listing. Local, HTTP and mesh adapters all implement it and all pass
 * `test/compliance/runtime-adapter`.
 */
export interface TransportAdapter {
  /** Store the task and start it where `options.route` says; see {@link SubmitOptions} for what an adapter may refuse. */
  submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState>;
  getTaskState(taskId: string): Promise<TaskState | null>;
  streamTaskUpdates(taskId: string, options?: StreamOptions): AsyncIterable<TaskUpdateEvent>;
  cancelTask(taskId: string): Promise<boolean>;
  listTasks(filter?: TaskListFilter): Promise<TaskState[]>;
  /** One page of the tasks listed, for lists that reach every task however many there are. */
  listTaskPage?(filter: TaskPageFilter): Promise<TaskPage>;
  /** Full history so far, without following it; adapters that lack it are read through a stream replay. */
  getTaskEvents?(taskId: string): Promise<TaskEvent[]>;
  listAgents(): Promise<AgentInfo[]>;
  listSkills(): Promise<SkillInfo[]>;
  getStatus(): Promise<Omit<RuntimeStatus, "mode">>;
  /**
   * Run an ended task (failed or cancelled) again as a new task with the same
   * request and placement options; the new task's `parentTaskId` and
   * `metadata.retryOf` name the old one. INVALID_TRANSITION while the task has
   * not ended or when it completed.
   */
  retryTask?(taskId: string): Promise<TaskState>;
  /** Release resources (sockets, storage). Idempotent. */
  close(): Promise<void>;
}
