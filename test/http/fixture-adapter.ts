/**
 * A small, real in-memory TransportAdapter for the HTTP tests: the same stream
 * semantics as the engine (history replay from `afterSeq`, live updates, end
 * after a terminal status) with tasks the test drives by hand.
 */
import { randomUUID } from "node:crypto";
import {
  TERMINAL_STATUSES,
  type AgentInfo,
  type RuntimeStatus,
  type SkillInfo,
  type StreamOptions,
  type TaskListFilter,
  type TaskState,
  type TaskStatus,
  type TaskSubmitRequest,
  type TaskUpdateEvent,
  type TransportAdapter,
} from "../../src/contract/types.js";
import { AgentUnavailableError, CoderClawError } from "../../src/contract/errors.js";

interface Entry {
  state: TaskState;
  history: TaskUpdateEvent[];
  waiters: Set<() => void>;
}

/** `echo` completes at once with its input; `manual` waits for {@link FixtureAdapter.update}. */
export class FixtureAdapter implements TransportAdapter {
  readonly #tasks = new Map<string, Entry>();
  readonly #started = Date.now();

  async submitTask(request: TaskSubmitRequest): Promise<TaskState> {
    const agentId = request.agentId ?? "echo";
    if (agentId !== "echo" && agentId !== "manual") throw new AgentUnavailableError(agentId, "unknown agent", "UNKNOWN_AGENT");
    const state: TaskState = {
      id: randomUUID(),
      status: "pending",
      agentId,
      description: request.description,
      createdAt: new Date(),
      ...(request.sessionId === undefined ? {} : { sessionId: request.sessionId }),
    };
    const entry: Entry = { state, history: [], waiters: new Set() };
    this.#tasks.set(state.id, entry);
    this.#record(entry, "task created");
    const snapshot = { ...state };
    if (agentId === "echo") {
      queueMicrotask(() => {
        this.update(state.id, "planning");
        this.update(state.id, "running");
        this.update(state.id, "completed", { output: request.input, progress: 100 });
      });
    }
    return snapshot;
  }

  /** Moves a task along; the HTTP layer only ever observes these. */
  update(taskId: string, status: TaskStatus, change: { progress?: number; output?: string; message?: string } = {}): void {
    const entry = this.#tasks.get(taskId);
    if (entry === undefined) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
    if (TERMINAL_STATUSES.has(entry.state.status)) {
      throw new CoderClawError("INVALID_TRANSITION", `task ${taskId}: invalid transition ${entry.state.status} -> ${status}`);
    }
    entry.state.status = status;
    if (status === "running" && entry.state.startedAt === undefined) entry.state.startedAt = new Date();
    if (TERMINAL_STATUSES.has(status)) entry.state.completedAt = new Date();
    if (change.progress !== undefined) entry.state.progress = change.progress;
    if (change.output !== undefined) entry.state.output = change.output;
    this.#record(entry, change.message ?? status);
  }

  async getTaskState(taskId: string): Promise<TaskState | null> {
    const entry = this.#tasks.get(taskId);
    return entry === undefined ? null : { ...entry.state };
  }

  async *streamTaskUpdates(taskId: string, options: StreamOptions = {}): AsyncIterable<TaskUpdateEvent> {
    const entry = this.#tasks.get(taskId);
    if (entry === undefined) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
    let next = options.afterSeq ?? 0;
    const signal = options.signal;
    while (signal?.aborted !== true) {
      while (next < entry.history.length) {
        const event = entry.history[next];
        next += 1;
        if (event === undefined) continue;
        yield event;
        if (TERMINAL_STATUSES.has(event.status)) return;
      }
      if (TERMINAL_STATUSES.has(entry.state.status)) return;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          entry.waiters.delete(wake);
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        entry.waiters.add(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  async cancelTask(taskId: string): Promise<boolean> {
    const entry = this.#tasks.get(taskId);
    if (entry === undefined) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
    if (TERMINAL_STATUSES.has(entry.state.status)) return false;
    this.update(taskId, "cancelled");
    return true;
  }

  async listTasks(filter: TaskListFilter = {}): Promise<TaskState[]> {
    return [...this.#tasks.values()]
      .map((e) => e.state)
      .filter((t) => (filter.status === undefined || t.status === filter.status) && (filter.sessionId === undefined || t.sessionId === filter.sessionId))
      .reverse()
      .slice(0, filter.limit ?? 100)
      .map((t) => ({ ...t }));
  }

  async listAgents(): Promise<AgentInfo[]> {
    return [
      { id: "echo", name: "Echo", description: "Returns its input", capabilities: ["test"] },
      { id: "manual", name: "Manual", description: "Driven by the test", capabilities: ["test"] },
    ];
  }

  async listSkills(): Promise<SkillInfo[]> {
    return [{ id: "noop", name: "No-op", description: "Does nothing", version: "1.0.0", enabled: true }];
  }

  async getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    const tasks = [...this.#tasks.values()];
    return {
      version: "0.0.0-test",
      uptime: Date.now() - this.#started,
      activeTasks: tasks.filter((e) => !TERMINAL_STATUSES.has(e.state.status)).length,
      totalTasks: tasks.length,
      healthy: true,
    };
  }

  async close(): Promise<void> {
    for (const entry of this.#tasks.values()) for (const wake of [...entry.waiters]) wake();
  }

  #record(entry: Entry, message: string): void {
    const { state } = entry;
    entry.history.push({
      taskId: state.id,
      status: state.status,
      timestamp: new Date(),
      message,
      seq: entry.history.length + 1,
      ...(state.progress === undefined ? {} : { progress: state.progress }),
    });
    for (const wake of [...entry.waiters]) wake();
  }
}
