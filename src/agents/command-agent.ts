import { isAbsolute, resolve } from "node:path";
import type { CommandAgentConfig } from "../config/agents-config.js";
import { holdsPlaceholder, substitute } from "../config/agents-config.js";
import { AgentUnavailableError, InvalidInputError } from "../contract/errors.js";
import type { AgentExecutor, Availability, ExecutionContext, ExecutionResult } from "./executor.js";
import { scrubEnv } from "./env.js";
import { findOnPath } from "./path-lookup.js";
import { executeCommand } from "./run-command.js";
import { taskTimeout } from "./shell.js";

/** Default per-task timeout of command agents: 30 minutes, coding agents take their time. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30 * 60 * 1000;

/** Settings shared by all command agents of a node. */
export interface CommandAgentOptions {
  /** The node's environment, scrubbed before it reaches the agent. Defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  killGraceMs?: number;
  outputLimitBytes?: number;
}

/**
 * An agent that runs a coding-agent CLI declared in configuration: the program
 * is looked up on the PATH the agent will see, `{input}` and `{description}`
 * are substituted into its arguments (each stays one argument: no shell), and
 * the input goes to stdin when the config says `input: stdin`.
 */
export function createCommandAgent(config: CommandAgentConfig, options: CommandAgentOptions = {}): AgentExecutor {
  const env = scrubEnv(options.env ?? process.env, config.env);
  const [program, ...args] = config.command;
  const timeoutMs = config.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const operands = operandArguments(args);
  return {
    info: { id: config.id, name: config.name, description: config.description, capabilities: [...config.capabilities] },
    skills: [...(config.skills ?? [])],
    runsProcesses: true,
    // A coding agent edits files and may call paid APIs: running it twice is not harmless.
    resumable: false,
    retryable: false,
    timeoutMs,
    availability(): Availability {
      return findOnPath(program, env.PATH) === undefined
        ? { available: false, reason: `binary not found on PATH: ${program}` }
        : { available: true };
    },
    async execute(ctx: ExecutionContext): Promise<ExecutionResult> {
      const path = findOnPath(program, env.PATH);
      if (path === undefined) throw new AgentUnavailableError(config.id, `binary not found on PATH: ${program}`);
      const values = { input: ctx.request.input, description: ctx.request.description };
      const argv = args.map((arg) => substitute(arg, values));
      const option = argv.findIndex((arg, i) => operands[i] === true && arg.startsWith("-"));
      if (option >= 0) {
        const field = holdsPlaceholder(args[option]!, "input") ? "input" : "description";
        throw new InvalidInputError(`starts with "-", which ${program} would read as an option where the agent's command gives it an operand (argument ${option + 1}): reword it, or have the agent's command give it as an option's value (--message={input}) or after "--"`, field);
      }
      return await executeCommand(ctx, {
        argv: [path, ...argv],
        cwd: config.cwd === undefined ? ctx.workspace : isAbsolute(config.cwd) ? config.cwd : resolve(ctx.workspace, config.cwd),
        env,
        ...(config.input === "stdin" ? { stdin: ctx.request.input } : {}),
        timeoutMs: taskTimeout(ctx.request.metadata, timeoutMs),
        ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
        ...(options.outputLimitBytes === undefined ? {} : { outputLimitBytes: options.outputLimitBytes }),
        label: program,
      });
    },
  };
}

/**
 * Which of `args` a task's words could turn into an option: those with a
 * placeholder that do not start with "-" themselves (`--message={input}` is
 * an option's value whatever it holds) and come before any "--". A program
 * reads an argument starting with "-" as an option, so an input of
 * `--settings={...}` or `-c key=value` given where the command puts an
 * operand would set the agent's options for whoever may use the agent.
 */
function operandArguments(args: readonly string[]): boolean[] {
  const end = args.indexOf("--");
  return args.map((arg, i) => (end < 0 || i < end) && !arg.startsWith("-") && holdsPlaceholder(arg));
}
