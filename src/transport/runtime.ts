import { CoderClawError } from "../contract/errors.js";
import type {
  AgentInfo,
  RuntimeInterface,
  RuntimeMode,
  RuntimeStatus,
  SkillInfo,
  StreamOptions,
  SubmitOptions,
  TaskListFilter,
  TaskState,
  TaskSubmitRequest,
  TaskUpdateEvent,
  TransportAdapter,
} from "../contract/types.js";

/**
 * The runtime contract over any transport: the same calls whether tasks run in
 * this process (`local-only`), on a server (`remote-enabled`) or in the mesh
 * (`distributed-cluster`).
 */
export class CoderClawRuntime implements RuntimeInterface {
  constructor(
    private readonly adapter: TransportAdapter,
    /** The deployment mode this runtime reports. */
    readonly mode: RuntimeMode,
  ) {}

  submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState> {
    return this.adapter.submitTask(request, options);
  }

  getTaskState(taskId: string): Promise<TaskState | null> {
    return this.adapter.getTaskState(taskId);
  }

  /** Updates of a task; ends after a terminal status. A finished task replays its history. */
  streamTaskUpdates(taskId: string, options?: StreamOptions): AsyncIterable<TaskUpdateEvent> {
    return this.adapter.streamTaskUpdates(taskId, options);
  }

  cancelTask(taskId: string): Promise<boolean> {
    return this.adapter.cancelTask(taskId);
  }

  /** Run an ended (failed or cancelled) task again as a new task; see `TransportAdapter.retryTask`. */
  async retryTask(taskId: string): Promise<TaskState> {
    if (!this.adapter.retryTask) throw new CoderClawError("UNAVAILABLE", "this runtime's transport cannot retry tasks");
    return this.adapter.retryTask(taskId);
  }

  listTasks(filter?: TaskListFilter): Promise<TaskState[]> {
    return this.adapter.listTasks(filter);
  }

  listAgents(): Promise<AgentInfo[]> {
    return this.adapter.listAgents();
  }

  listSkills(): Promise<SkillInfo[]> {
    return this.adapter.listSkills();
  }

  async getStatus(): Promise<RuntimeStatus> {
    return { ...(await this.adapter.getStatus()), mode: this.mode };
  }

  /** Release the adapter's resources. */
  close(): Promise<void> {
    return this.adapter.close();
  }
}
