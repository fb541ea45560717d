import type { AgentExecutor, ExecutionContext, ExecutionResult } from "../../src/agents/executor.js";

/**
 * Agents whose executions finish only when the test says so: the test plays the
 * executor's part (progress, complete, fail) while the engine is real.
 */
export class ExecutionController {
  private readonly executions = new Map<string, { ctx: ExecutionContext; resolve: (r: ExecutionResult) => void; reject: (e: unknown) => void }>();
  /** Number of execute() calls per task id, to see restarts. */
  readonly starts = new Map<string, number>();

  agent(id: string, resumable: boolean): AgentExecutor {
    return {
      info: { id, name: id, description: `controlled (${resumable ? "resumable" : "not resumable"})`, capabilities: [id] },
      resumable,
      retryable: resumable,
      availability: () => ({ available: true }),
      execute: (ctx) =>
        new Promise<ExecutionResult>((resolve, reject) => {
          this.starts.set(ctx.taskId, (this.starts.get(ctx.taskId) ?? 0) + 1);
          const entry = { ctx, resolve, reject };
          this.executions.set(ctx.taskId, entry);
          ctx.signal.addEventListener(
            "abort",
            () => {
              if (this.executions.get(ctx.taskId) === entry) this.executions.delete(ctx.taskId);
              reject(new Error(`aborted: ${String(ctx.signal.reason)}`));
            },
            { once: true },
          );
        }),
    };
  }

  isExecuting(taskId: string): boolean {
    return this.executions.has(taskId);
  }

  complete(taskId: string, output = `done ${taskId}`): void {
    const e = this.take(taskId);
    e.resolve({ output });
  }

  fail(taskId: string, message = "executor said no"): void {
    this.take(taskId).reject(new Error(message));
  }

  progress(taskId: string, p: number): void {
    const e = this.executions.get(taskId);
    if (!e) throw new Error(`no execution for ${taskId}`);
    e.ctx.progress(p, `at ${p}`);
  }

  /** Forget executions (after the engine that owned them is gone). */
  reset(): void {
    this.executions.clear();
  }

  private take(taskId: string) {
    const e = this.executions.get(taskId);
    if (!e) throw new Error(`no execution for ${taskId}`);
    this.executions.delete(taskId);
    return e;
  }
}

/** Let queued callbacks, group commits and pumps run. */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
