import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import type { TaskState, TaskSubmitRequest } from "../contract/types.js";
import type { AgentExecutor } from "../agents/executor.js";
import { resolveWorkspace } from "../agents/workspace.js";
import { assertSandboxAvailable, DEFAULT_BWRAP, type SandboxMode, type SandboxSpec } from "../agents/sandbox.js";

/**
 * Workspaces for tasks that carry code (a snapshot of the submitter's tree):
 * provided by the node, which fetches and materialises the code and records
 * what the agent changed.
 */
export interface TaskWorkspaces {
  /** Whether the request carries code (a malformed spec counts: `prepare` refuses it, failing the task). */
  carriesCode(request: Readonly<TaskSubmitRequest>): boolean;
  /** Throws (PERMISSION_DENIED, INVALID_INPUT) when this node takes no such code for this agent: checked when the task is submitted, before it is stored. */
  assertAccepted(request: Readonly<TaskSubmitRequest>, submittedBy: string | undefined): void;
  /** Whether the node runs a process of its own in the task's workspace as its agent, in the agent's sandbox (git reading the commits back), whatever the agent runs. */
  runsProcesses?(request: Readonly<TaskSubmitRequest>): boolean;
  /** The task's own directory, holding its code, ready for its agent; throws to fail the task. */
  prepare(task: { id: string; request: Readonly<TaskSubmitRequest>; submittedBy?: string }, signal: AbortSignal): Promise<string>;
  /** After the agent returned: what it changed, recorded with the completion as `data.workspace`; `sandbox`, the one the agent ran in, if any. */
  collect(taskId: string, sandbox?: SandboxSpec): Promise<unknown>;
  /** The task's execution is over, whatever its outcome: let go of its directory (its result stays). */
  release(taskId: string): Promise<void>;
}

/** Where tasks run and how they are confined; part of `TaskEngineOptions`. */
export interface ExecutionEnvironmentOptions {
  /** Data directory: per-session workspaces live in `<dataDir>/workspaces`. */
  dataDir: string;
  /** May a request run in the repository at `metadata.repositoryPath`? Default: never. */
  allowRepository?: (path: string, request: Readonly<TaskSubmitRequest>) => boolean;
  /**
   * How processes run for work another device submitted (see `SandboxMode`).
   * Default `required`: in a bubblewrap sandbox that sees the workspace
   * read-write, the system read-only, and not the data directory or home
   * directories; where bubblewrap is missing, such work of an agent that runs
   * processes is refused when submitted.
   */
  sandbox?: { mode: SandboxMode; bwrap?: string; hide?: readonly string[] };
  /** Workspaces of tasks that carry code; without them such a request runs in its session's workspace like any other. */
  workspaces?: TaskWorkspaces;
}

/**
 * Where a task's executor runs: its workspace directory and, for work another
 * device submitted, the sandbox its processes run in. Both are checked when a
 * task is submitted, so that what cannot run is refused before it is stored.
 */
export class ExecutionEnvironment {
  /** Workspace directories created or being created; one that failed is forgotten, so the next task tries again. */
  readonly #workspaces = new Map<string, Promise<string>>();
  /** What the sandbox of work from other devices hides; see {@link sandboxFor}. */
  #hidden: string[] | undefined;

  constructor(private readonly options: ExecutionEnvironmentOptions) {}

  /** Workspaces of tasks that carry code, when the node provides them. */
  get workspaces(): TaskWorkspaces | undefined {
    return this.options.workspaces;
  }

  /** Throws when the request's session or repository may not be used as a workspace. */
  assertWorkspaceAllowed(request: Readonly<TaskSubmitRequest>): void {
    this.#workspaceOf(request);
  }

  /** Throws when work another device submitted would run processes (its agent's, or the node's own in its workspace) without the sandbox it requires. */
  assertSandboxFor(agent: AgentExecutor, submittedBy: string | undefined, request?: Readonly<TaskSubmitRequest>): void {
    const sandbox = this.#policy();
    const runsProcesses = agent.runsProcesses === true || (request !== undefined && this.options.workspaces?.runsProcesses?.(request) === true);
    if (submittedBy !== undefined && runsProcesses && sandbox.mode === "required") assertSandboxAvailable(sandbox.bwrap ?? DEFAULT_BWRAP);
  }

  /**
   * The task's workspace directory, once it exists. It is created off the event
   * loop: a new session's first `mkdir` costs 0.1 ms on an idle disk and 1-2 ms on a busy one,
   * which blocked every other task while it ran.
   */
  workspaceFor(request: Readonly<TaskSubmitRequest>): Promise<string> {
    const dir = this.#workspaceOf(request);
    let ready = this.#workspaces.get(dir);
    if (ready === undefined) {
      ready = mkdir(dir, { recursive: true, mode: 0o700 }).then(() => dir);
      this.#workspaces.set(dir, ready);
      ready.catch(() => this.#workspaces.delete(dir));
    }
    return ready;
  }

  /**
   * Begin creating the workspace of a task just taken in, while its record is
   * written; resolves once it exists or could not be made (the execution asks
   * again, and a failure fails the task there).
   */
  prepareWorkspace(request: Readonly<TaskSubmitRequest>): Promise<void> {
    if (this.options.workspaces?.carriesCode(request) === true) return Promise.resolve();
    return this.workspaceFor(request).then(
      () => undefined,
      () => undefined,
    );
  }

  /** The sandbox of a task another device submitted, unless this node runs such work unsandboxed. */
  sandboxFor(state: Readonly<TaskState>, workspace: string): SandboxSpec | undefined {
    const policy = this.#policy();
    if (state.submittedBy === undefined || policy.mode === "off") return undefined;
    // The same for every task; looked up once, not on the path of each routed task.
    this.#hidden ??= [...new Set([this.options.dataDir, "/root", "/home", ...(process.env.HOME ? [process.env.HOME] : []), ...(policy.hide ?? [])])].filter((p) => existsSync(p));
    return { bwrap: policy.bwrap ?? DEFAULT_BWRAP, workspace, hide: this.#hidden };
  }

  #workspaceOf(request: Readonly<TaskSubmitRequest>): string {
    return resolveWorkspace(request, {
      dataDir: this.options.dataDir,
      ...(this.options.allowRepository && { allowRepository: this.options.allowRepository }),
    });
  }

  #policy(): NonNullable<ExecutionEnvironmentOptions["sandbox"]> {
    return this.options.sandbox ?? { mode: "required" };
  }
}
