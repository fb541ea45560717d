import type { AgentExecutor, ExecutionContext, ExecutionResult } from "../agents/executor.js";
import type { ProcessRecords } from "../agents/process-records.js";
import type { ExecutionEnvironment } from "./execution-environment.js";
import type { LiveTask, Outcome } from "./live-task.js";

/** Why an execution was aborted; carried as the AbortSignal's reason. */
export type AbortCause = "cancelled" | "timeout" | "shutdown";

/** What every execution shares. */
export interface ExecutionSettings {
  environment: ExecutionEnvironment;
  /** Per-task timeout when the agent declares none. */
  defaultTimeoutMs: number;
  processes: ProcessRecords | undefined;
}

/** What an executor reports back to the engine. */
export interface ExecutionReports {
  progress(task: LiveTask, progress: number, message?: string): void;
  output(task: LiveTask, chunk: string): void;
  /** The executor has returned or thrown; `controller` says whether it was aborted, and why. */
  finished(task: LiveTask, controller: AbortController, outcome: Outcome): void;
  /**
   * The workspace of a task that carries code is ready: the task runs from now.
   * The agent starts once the promise resolves (for an agent that cannot
   * resume, once `running` is durable).
   */
  ready(task: LiveTask): Promise<void>;
}

/** How long the agent's executions may run. */
export function timeoutOf(agent: AgentExecutor | undefined, settings: ExecutionSettings): number {
  return agent?.timeoutMs ?? settings.defaultTimeoutMs;
}

/**
 * Start the task's executor in its workspace, sandboxed when another device
 * submitted the task, aborted with "timeout" when it runs too long. Its
 * checkpoints wait while the task is paused. `finished` hears its outcome once,
 * also when it throws before returning a promise. With `recorded`, the agent
 * starts only once it resolves (the task's start is durable) and never when it
 * rejects.
 */
export function startExecution(task: LiveTask, settings: ExecutionSettings, reports: ExecutionReports, recorded?: Promise<void>): void {
  const agent = task.agent!;
  const controller = new AbortController();
  task.controller = controller;
  task.executing = true;
  task.timer = setTimeout(() => controller.abort("timeout" satisfies AbortCause), timeoutOf(agent, settings));
  task.timer.unref();
  const stopped = (): Error => new Error(`stopped before it started (${String(controller.signal.reason)})`);
  const contextIn = (workspace: string): ExecutionContext => {
    const sandbox = settings.environment.sandboxFor(task.state, workspace);
    return {
      taskId: task.state.id,
      request: task.request,
      workspace,
      ...(sandbox && { sandbox }),
      signal: controller.signal,
      progress: (p, message) => reports.progress(task, p, message),
      output: (chunk) => reports.output(task, chunk),
      ...(settings.processes === undefined ? {} : { processes: settings.processes }),
      checkpoint: () =>
        task.state.status === "waiting" && !controller.signal.aborted
          ? new Promise<void>((resolve) => task.checkpointWaiters.push(resolve))
          : Promise.resolve(),
    };
  };
  const workspaces = settings.environment.workspaces?.carriesCode(task.request) === true ? settings.environment.workspaces : undefined;
  let run: () => Promise<ExecutionResult>;
  if (workspaces !== undefined) {
    // The code comes first (fetched, materialised, tracked; the task is `planning` meanwhile), and what the agent changed is taken before the outcome is told.
    run = async () => {
      if (controller.signal.aborted) throw stopped();
      const workspace = await workspaces.prepare({ id: task.state.id, request: task.request, ...(task.state.submittedBy !== undefined && { submittedBy: task.state.submittedBy }) }, controller.signal);
      if (controller.signal.aborted) throw stopped();
      await reports.ready(task);
      if (controller.signal.aborted) throw stopped();
      const result = await agent.execute(contextIn(workspace));
      const changes = await workspaces.collect(task.state.id, settings.environment.sandboxFor(task.state, workspace));
      const data = result.data === undefined ? {} : typeof result.data === "object" && result.data !== null && !Array.isArray(result.data) ? result.data : { agent: result.data };
      return { ...result, data: { ...data, workspace: changes } };
    };
  } else {
    const workspace = settings.environment.workspaceFor(task.request);
    run = async () => {
      const ctx = contextIn(await workspace);
      // Stopped (cancelled, timed out, shut down) while its start was being recorded or its workspace made: the agent never acts.
      if (controller.signal.aborted) throw stopped();
      return agent.execute(ctx);
    };
  }
  const started = recorded === undefined ? run() : recorded.then(run);
  const promise = workspaces === undefined ? started : started.finally(() => workspaces.release(task.state.id));
  promise.then(
    (result) => reports.finished(task, controller, { ok: true, result }),
    (error: unknown) => reports.finished(task, controller, { ok: false, error }),
  );
}
