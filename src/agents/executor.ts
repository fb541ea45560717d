import type { SandboxSpec } from "./sandbox.js";
import type { ProcessRecords } from "./process-records.js";
import type { AgentInfo, SkillInfo, TaskSubmitRequest } from "../contract/types.js";

/** What an executor receives to run one task. */
export interface ExecutionContext {
  readonly taskId: string;
  readonly request: Readonly<TaskSubmitRequest>;
  /** Working directory reserved for this task (per session), created before execute is called. */
  readonly workspace: string;
  /**
   * Set for work another device submitted on a node that sandboxes it: agents
   * that run processes run them inside (see `sandboxArgv`).
   */
  readonly sandbox?: SandboxSpec;
  /** Aborted on cancel, timeout or shutdown; `signal.reason` says which. Executors must stop promptly. */
  readonly signal: AbortSignal;
  /** Report progress in [0, 100] with an optional message. */
  progress(progress: number, message?: string): void;
  /** Report a chunk of output (a log line, streamed tokens); kept in the task's history. */
  output(chunk: string): void;
  /**
   * A safe point: resolves at once while the task runs, and waits while it is
   * paused. Executors that can pause call it between steps; those that never
   * call it are held at completion instead.
   */
  checkpoint(): Promise<void>;
  /** Where executors record the process groups they start (see {@link ProcessRecords}); absent when nothing keeps them. */
  readonly processes?: ProcessRecords;
}

/** The result of a finished execution. Throwing means the task failed. */
export interface ExecutionResult {
  output: string;
  data?: unknown;
}

/** Whether an agent can run here now, and why not. */
export type Availability = { available: true } | { available: false; reason: string };

/** Runs tasks for one agent. */
export interface AgentExecutor {
  /** Public description; `capabilities` drive routing in the mesh. */
  readonly info: AgentInfo;
  /**
   * After an unclean stop, may a task that was running be started again from the
   * beginning? Side-effect-free or idempotent agents say true.
   */
  readonly resumable: boolean;
  /** May the mesh re-route a task of this agent to another node when its executor dies. */
  readonly retryable: boolean;
  /**
   * Skills a task of this agent uses; each is authorised (`skill:execute` and its
   * policy) before a task of the agent is accepted. Undefined: none.
   */
  readonly skills?: readonly string[];
  /**
   * True for agents that run processes (shell, command agents): their work from
   * another device needs the sandbox, and is refused where there is none.
   */
  readonly runsProcesses?: boolean;
  /** Default per-task timeout in ms, or undefined for the engine default. */
  readonly timeoutMs?: number;
  /** Checked when listing and before every submit. */
  availability(): Availability | Promise<Availability>;
  execute(ctx: ExecutionContext): Promise<ExecutionResult>;
}

/** Lookup of agents and skills a node can offer. */
export interface AgentRegistry {
  get(agentId: string): AgentExecutor | undefined;
  list(): AgentExecutor[];
  listSkills(): SkillInfo[] | Promise<SkillInfo[]>;
}
