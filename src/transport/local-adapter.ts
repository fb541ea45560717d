import type {
  AgentInfo,
  RuntimeStatus,
  SkillInfo,
  StreamOptions,
  SubmitOptions,
  TaskEvent,
  TaskListFilter,
  TaskPage,
  TaskPageFilter,
  TaskState,
  TaskSubmitRequest,
  TaskUpdateEvent,
  TransportAdapter,
} from "../contract/types.js";
import { describeAgent } from "../agents/builtin.js";
import { refusePeerRoute } from "../contract/route.js";
import { CoderClawError, InvalidInputError, NotFoundError } from "../contract/errors.js";
import { parseSubmitOptions } from "../contract/submit-options.js";
import { openLocalCore, type LocalContext, type LocalCore } from "../runtime/local-core.js";
import { VERSION } from "../version.js";

/**
 * Runs tasks in this process on the local engine (mode `local-only`).
 *
 * The constructor is synchronous so the upstream usage works as written; storage
 * opens on first use, and an unusable data directory (locked, corrupt) rejects
 * that first call with an error naming the path. Use {@link LocalTransportAdapter.open}
 * to surface such errors eagerly.
 */
export class LocalTransportAdapter implements TransportAdapter {
  private readonly core: Promise<LocalCore>;
  private readonly startedAt = Date.now();

  constructor(context: LocalContext | LocalCore = {}) {
    this.core = "engine" in context ? Promise.resolve(context) : openLocalCore(context);
    // Keep an unobserved open failure from crashing the process; the next call reports it.
    this.core.catch(() => undefined);
  }

  /** Open storage now and fail fast on an unusable data directory. */
  static async open(context: LocalContext = {}): Promise<LocalTransportAdapter> {
    const adapter = new LocalTransportAdapter(context);
    await adapter.core;
    return adapter;
  }

  /** The engine and storage behind this adapter (for the CLI, the HTTP server and the mesh node). */
  get localCore(): Promise<LocalCore> {
    return this.core;
  }

  /**
   * Runs the task here: the routes `auto` and `local` are the same, and a peer
   * is refused (INVALID_INPUT on `route`). One queue runs tasks in submission
   * order, so `priority` changes nothing here, and `waitForPeer` has no member
   * to wait for; `requires` and `deadline` need members to place on, and `repo`
   * (with `artifacts`) a node that serves and tracks code: all are refused
   * (INVALID_INPUT).
   */
  async submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState> {
    const parsed = parseSubmitOptions(options);
    refusePeerRoute(parsed, "LocalTransportAdapter");
    for (const field of ["requires", "deadline", "repo"] as const) {
      if (parsed[field] !== undefined) throw new InvalidInputError(`LocalTransportAdapter runs tasks in this process and has no members to place on: ${field} needs a mesh node (coderclaw start)`, field);
    }
    return (await this.core).engine.submit(request);
  }

  /** Submit an ended (failed or cancelled) task again as a new one that names it (`parentTaskId`, `metadata.retryOf`). */
  async retryTask(taskId: string): Promise<TaskState> {
    const { engine } = await this.core;
    const old = await engine.getTask(taskId);
    if (old === null) throw new NotFoundError("task", taskId);
    if (old.status !== "failed" && old.status !== "cancelled") throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} is ${old.status}: only a failed or cancelled task can be retried`);
    const request = await engine.getTaskRequest(taskId);
    return engine.submit({ ...request, parentTaskId: taskId, metadata: { ...(request.metadata ?? {}), retryOf: taskId } });
  }

  async getTaskState(taskId: string): Promise<TaskState | null> {
    return (await this.core).engine.getTask(taskId);
  }

  async *streamTaskUpdates(taskId: string, options?: StreamOptions): AsyncIterable<TaskUpdateEvent> {
    const core = await this.core;
    yield* core.engine.stream(taskId, options);
  }

  async cancelTask(taskId: string): Promise<boolean> {
    return (await this.core).engine.cancel(taskId);
  }

  async getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    return (await this.core).engine.getTaskEvents(taskId);
  }

  async listTasks(filter?: TaskListFilter): Promise<TaskState[]> {
    return (await this.core).engine.listTasks(filter);
  }

  async listTaskPage(filter: TaskPageFilter): Promise<TaskPage> {
    return (await this.core).engine.listTaskPage(filter);
  }

  async listAgents(): Promise<AgentInfo[]> {
    const core = await this.core;
    return Promise.all(core.agents.list().map(describeAgent));
  }

  async listSkills(): Promise<SkillInfo[]> {
    return (await this.core).agents.listSkills();
  }

  async getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    const c = (await this.core).engine.counters();
    return { version: VERSION, uptime: Date.now() - this.startedAt, activeTasks: c.activeTasks, totalTasks: c.totalTasks, healthy: c.healthy };
  }

  async close(): Promise<void> {
    const core = await this.core.catch(() => undefined);
    await core?.close();
  }
}
