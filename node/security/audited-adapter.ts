import { CoderClawError } from "../../src/contract/errors.js";
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
} from "../../src/contract/types.js";
import type { AuditBody } from "../../src/security/index.js";

/**
 * A string field of a request the inner adapter has not checked yet (it may come
 * straight off a socket, as any JSON value): anything else reads as absent, so a
 * malformed request is refused by the inner adapter, and recorded, like any other.
 */
function stringField(request: unknown, field: "sessionId" | "agentId"): string | undefined {
  const value = typeof request === "object" && request !== null ? (request as Record<string, unknown>)[field] : undefined;
  return typeof value === "string" ? value : undefined;
}

/**
 * The runtime as the node's owner reaches it through the control socket (whose
 * token only the data directory's owner can read): every submission and cancel
 * is recorded in the node's audit log, allowed or not, before the answer returns.
 */
export class AuditedAdapter implements TransportAdapter {
  constructor(
    private readonly inner: TransportAdapter,
    private readonly record: (body: AuditBody) => Promise<unknown>,
    private readonly userId: string,
  ) {}

  async submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState> {
    const sessionId = stringField(request, "sessionId");
    const base = { action: "task.submit", userId: this.userId, deviceId: this.userId, ...(sessionId !== undefined && { sessionId }) };
    try {
      const task = await this.inner.submitTask(request, options);
      await this.record({ ...base, resource: task.id, result: "allowed", reason: `local; agent ${task.agentId ?? "?"} on ${task.executorId ?? "?"}` });
      return task;
    } catch (err) {
      await this.record({ ...base, resource: stringField(request, "agentId") ?? "default agent", result: "error", reason: (err as Error).message.slice(0, 500) });
      throw err;
    }
  }

  /** A retry is a submission of the same work: audited as one. */
  async retryTask(taskId: string): Promise<TaskState> {
    if (!this.inner.retryTask) throw new CoderClawError("UNAVAILABLE", "this runtime cannot retry tasks");
    const base = { action: "task.submit", userId: this.userId, deviceId: this.userId };
    try {
      const task = await this.inner.retryTask(taskId);
      await this.record({ ...base, resource: task.id, result: "allowed", reason: `local; retry of ${taskId}` });
      return task;
    } catch (err) {
      await this.record({ ...base, resource: taskId, result: "error", reason: `retry: ${(err as Error).message.slice(0, 500)}` });
      throw err;
    }
  }

  async cancelTask(taskId: string): Promise<boolean> {
    const cancelled = await this.inner.cancelTask(taskId);
    await this.record({ action: "task.cancel", userId: this.userId, deviceId: this.userId, resource: taskId, result: "allowed", reason: cancelled ? "local; cancelled" : "local; had already finished" });
    return cancelled;
  }

  getTaskState(taskId: string): Promise<TaskState | null> {
    return this.inner.getTaskState(taskId);
  }

  getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    return this.inner.getTaskEvents ? this.inner.getTaskEvents(taskId) : Promise.resolve([]);
  }

  streamTaskUpdates(taskId: string, options?: StreamOptions): AsyncIterable<TaskUpdateEvent> {
    return this.inner.streamTaskUpdates(taskId, options);
  }

  listTasks(filter?: TaskListFilter): Promise<TaskState[]> {
    return this.inner.listTasks(filter);
  }

  listTaskPage(filter: TaskPageFilter): Promise<TaskPage> {
    return this.inner.listTaskPage ? this.inner.listTaskPage(filter) : this.inner.listTasks(filter).then((tasks) => ({ tasks }));
  }

  listAgents(): Promise<AgentInfo[]> {
    return this.inner.listAgents();
  }

  listSkills(): Promise<SkillInfo[]> {
    return this.inner.listSkills();
  }

  getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    return this.inner.getStatus();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
