import type {
  AgentInfo,
  RuntimeStatus,
  SkillInfo,
  StreamOptions,
  SubmitOptions,
  TaskEvent,
  TaskListFilter,
  TaskState,
  TaskSubmitRequest,
  TaskUpdateEvent,
  TransportAdapter,
} from "../contract/types.js";
import { describeAgent } from "../agents/builtin.js";
import { refusePeerRoute } from "../contract/route.js";
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

  /** Runs the task here: the routes `auto` and `local` are the same, and a peer is refused (INVALID_INPUT on `route`). */
  async submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState> {
    refusePeerRoute(options, "LocalTransportAdapter");
    return (await this.core).engine.submit(request);
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
