import type { SkillInfo } from "../contract/types.js";
import { InvalidInputError } from "../contract/errors.js";
import type { AgentExecutor, Availability, ExecutionContext, ExecutionResult } from "./executor.js";
import { scrubEnv, type EnvGrant } from "./env.js";
import { findOnPath } from "./path-lookup.js";
import { executeCommand } from "./run-command.js";

/** Id of the skill and of the agent that uses it. */
export const SHELL_EXEC_ID = "shell-exec";
/** Id of the agent that runs shell commands. */
export const SHELL_AGENT_ID = "shell";

/** Default per-task timeout of shell commands: 10 minutes. */
export const DEFAULT_SHELL_TIMEOUT_MS = 10 * 60 * 1000;
/** The longest per-task timeout a request may ask for: 24 hours. */
export const MAX_TASK_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** The `shell-exec` skill: runs commands on this machine, hence dangerous. */
export const SHELL_EXEC_SKILL: SkillInfo = {
  id: SHELL_EXEC_ID,
  name: SHELL_EXEC_ID,
  description: "Runs a shell command line (/bin/sh -c) in the task's workspace, streaming its output",
  version: "1.0.0",
  enabled: true,
  dangerous: true,
};

/** Settings of the shell agent. */
export interface ShellAgentOptions {
  /** The node's environment, scrubbed before it reaches commands. Defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Node variables commands may see beyond the allowlist. */
  envGrant?: EnvGrant;
  /** The shell that interprets command lines. Defaults to /bin/sh. */
  shell?: string;
  timeoutMs?: number;
  killGraceMs?: number;
  outputLimitBytes?: number;
}

/**
 * The `shell` agent: the task's input is a command line, run as
 * `/bin/sh -c <input>` in the task's workspace with a scrubbed environment.
 * `request.metadata.timeoutMs` (a positive integer) shortens the timeout for
 * one task.
 */
export function createShellAgent(options: ShellAgentOptions = {}): AgentExecutor {
  const source = options.env ?? process.env;
  const shell = options.shell ?? "/bin/sh";
  const timeoutMs = options.timeoutMs ?? DEFAULT_SHELL_TIMEOUT_MS;
  const env = scrubEnv(source, options.envGrant);
  return {
    info: {
      id: SHELL_AGENT_ID,
      name: "Shell",
      description: "Runs the task input as a shell command line in the task workspace (skill shell-exec)",
      capabilities: [SHELL_EXEC_ID],
    },
    skills: [SHELL_EXEC_ID],
    runsProcesses: true,
    resumable: false,
    retryable: false,
    timeoutMs,
    availability(): Availability {
      return findOnPath(shell, env.PATH) === undefined
        ? { available: false, reason: `shell not found: ${shell}` }
        : { available: true };
    },
    async execute(ctx: ExecutionContext): Promise<ExecutionResult> {
      const command = ctx.request.input;
      if (command.trim().length === 0) throw new InvalidInputError("must be a non-empty command line", "input");
      return await executeCommand(ctx, {
        argv: [shell, "-c", command],
        cwd: ctx.workspace,
        env,
        timeoutMs: taskTimeout(ctx.request.metadata, timeoutMs),
        ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
        ...(options.outputLimitBytes === undefined ? {} : { outputLimitBytes: options.outputLimitBytes }),
        label: "command",
      });
    },
  };
}

/**
 * The timeout of one task: `metadata.timeoutMs` when the request sets it, capped
 * at the agent's `limit` (the engine aborts at the agent's declared timeout
 * anyway, so a longer one would be a promise we cannot keep).
 */
export function taskTimeout(metadata: Readonly<Record<string, unknown>> | undefined, limit: number): number {
  const asked = metadata?.["timeoutMs"];
  if (asked === undefined) return limit;
  if (typeof asked !== "number" || !Number.isSafeInteger(asked) || asked <= 0 || asked > MAX_TASK_TIMEOUT_MS) {
    throw new InvalidInputError(`must be an integer number of ms in [1, ${MAX_TASK_TIMEOUT_MS}]`, "metadata.timeoutMs");
  }
  return Math.min(asked, limit);
}
