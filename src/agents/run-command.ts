import type { ExecutionContext, ExecutionResult } from "./executor.js";
import { ExecutionFailedError } from "./errors.js";
import { DEFAULT_OUTPUT_LIMIT } from "./output-limit.js";
import { runProcess } from "./process.js";
import { sandboxArgv } from "./sandbox.js";

/** How much of stderr an error message quotes. */
const STDERR_TAIL_BYTES = 2_048;

/** What {@link executeCommand} runs and within which limits. */
export interface CommandSpec {
  argv: readonly [string, ...string[]];
  cwd: string;
  env: Record<string, string>;
  stdin?: string;
  timeoutMs?: number;
  killGraceMs?: number;
  outputLimitBytes?: number;
  /** Names the command in error messages. */
  label: string;
}

/**
 * Run a command for a task: lines stream to the task's output (stderr lines
 * marked) as they come, exit 0 gives the result (stdout, head and tail kept), anything else
 * throws an {@link ExecutionFailedError} quoting the tail of stderr.
 *
 * Streaming stops once the output limit's worth of lines went out, with one
 * marker line, so a flood cannot flood the task's history either.
 */
export async function executeCommand(ctx: ExecutionContext, spec: CommandSpec): Promise<ExecutionResult> {
  const limit = spec.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT;
  let streamed = 0;
  let streamCut = false;
  const result = await runProcess({
    argv: ctx.sandbox === undefined ? spec.argv : sandboxArgv(ctx.sandbox, spec.argv, spec.cwd),
    cwd: spec.cwd,
    env: spec.env,
    ...(spec.stdin === undefined ? {} : { stdin: spec.stdin }),
    signal: ctx.signal,
    ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
    ...(spec.killGraceMs === undefined ? {} : { killGraceMs: spec.killGraceMs }),
    outputLimitBytes: limit,
    ...(ctx.processes === undefined ? {} : { records: ctx.processes }),
    onLine: (stream, line) => {
      if (streamCut) return;
      // Chunks are raw text that the engine concatenates: each line keeps its newline.
      const text = stream === "stderr" ? `[stderr] ${line}\n` : `${line}\n`;
      streamed += Buffer.byteLength(text);
      if (streamed > limit) {
        streamCut = true;
        ctx.output(`[output limit of ${limit} bytes reached: no more lines are streamed; the result keeps the head and the tail]\n`);
        return;
      }
      ctx.output(text);
    },
  });
  const data = {
    exitCode: result.exitCode,
    exitSignal: result.exitSignal,
    stdoutBytes: result.stdout.totalBytes,
    stderrBytes: result.stderr.totalBytes,
    cutBytes: result.stdout.cutBytes + result.stderr.cutBytes,
  };
  // No progress events of our own: the engine already records "running" and
  // the final status, and every history entry is a stored document change.
  if (result.exitCode === 0) {
    return { output: result.stdout.toString(), data };
  }
  const tail = result.stderr.lastText(STDERR_TAIL_BYTES).trimEnd();
  const how = result.exitCode === null ? `was killed by ${result.exitSignal ?? "a signal"}` : `exited with code ${result.exitCode}`;
  throw new ExecutionFailedError(`${spec.label} ${how}${tail.length > 0 ? `; stderr ends with:\n${tail}` : ""}`, {
    exitCode: result.exitCode,
    exitSignal: result.exitSignal,
  });
}
