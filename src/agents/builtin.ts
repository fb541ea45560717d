import type { AgentInfo, SkillInfo } from "../contract/types.js";
import { CoderClawError } from "../contract/errors.js";
import type { AgentExecutor, AgentRegistry, ExecutionContext, ExecutionResult } from "./executor.js";

/** Returns its input unchanged. Side-effect free, so safe to resume and retry. */
export function createEchoAgent(): AgentExecutor {
  return {
    info: { id: "echo", name: "Echo", description: "Returns the task input as its output", capabilities: ["echo"] },
    resumable: true,
    retryable: true,
    availability: () => ({ available: true }),
    execute: async (ctx: ExecutionContext): Promise<ExecutionResult> => ({ output: ctx.request.input }),
  };
}

/** Longest sleep the `sleep` agent accepts, so a typo cannot pin a slot for days. */
const MAX_SLEEP_MS = 24 * 60 * 60 * 1000;

/** Parses the `sleep` agent's input: milliseconds, optionally followed by a step count. */
function parseSleepInput(input: string): { ms: number; steps: number } {
  const [msText, stepsText] = input.trim().split(/\s+/);
  const ms = Number(msText);
  const steps = stepsText === undefined ? 10 : Number(stepsText);
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_SLEEP_MS) {
    throw new CoderClawError("INVALID_INPUT", `sleep: input must be a whole number of milliseconds (0..${MAX_SLEEP_MS}), got '${input.slice(0, 40)}'`, { field: "input" });
  }
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000) {
    throw new CoderClawError("INVALID_INPUT", "sleep: step count must be 1..1000", { field: "input" });
  }
  return { ms, steps };
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Sleeps for the number of milliseconds in its input, reporting progress in steps
 * and pausing at each step while the task is paused. Not resumable: after a crash
 * it cannot know how long it had already slept.
 */
export function createSleepAgent(options: { resumable?: boolean } = {}): AgentExecutor {
  return {
    info: { id: "sleep", name: "Sleep", description: "Waits for <ms> [steps] milliseconds, reporting progress", capabilities: ["sleep"] },
    resumable: options.resumable ?? false,
    retryable: true,
    availability: () => ({ available: true }),
    execute: async (ctx: ExecutionContext): Promise<ExecutionResult> => {
      const { ms, steps } = parseSleepInput(ctx.request.input);
      for (let i = 1; i <= steps; i++) {
        await delay(ms / steps, ctx.signal);
        await ctx.checkpoint();
        ctx.progress(Math.round((i / steps) * 100), `step ${i}/${steps}`);
      }
      return { output: `slept ${ms} ms` };
    },
  };
}

/** A fixed set of agents and skills; the registry used when nothing else is configured. */
export class StaticAgentRegistry implements AgentRegistry {
  private readonly agents = new Map<string, AgentExecutor>();

  constructor(agents: AgentExecutor[], private readonly skills: SkillInfo[] = []) {
    for (const agent of agents) this.agents.set(agent.info.id, agent);
  }

  get(agentId: string): AgentExecutor | undefined {
    return this.agents.get(agentId);
  }

  list(): AgentExecutor[] {
    return [...this.agents.values()];
  }

  listSkills(): SkillInfo[] {
    return this.skills;
  }
}

/** A registry with the built-in `echo` and `sleep` agents plus any extra executors. */
export function createBuiltinRegistry(extra: AgentExecutor[] = []): StaticAgentRegistry {
  return new StaticAgentRegistry([createEchoAgent(), createSleepAgent(), ...extra]);
}

/** The public description of an executor, with its current availability. */
export async function describeAgent(agent: AgentExecutor): Promise<AgentInfo> {
  const availability = await agent.availability();
  return availability.available
    ? { ...agent.info, available: true }
    : { ...agent.info, available: false, unavailableReason: availability.reason };
}
