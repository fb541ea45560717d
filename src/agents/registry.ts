import { dirname, join } from "node:path";
import { loadAgentsConfig, type AgentsConfigFile, type CommandAgentConfig } from "../config/agents-config.js";
import { RUNTIME_CONFIG_PATH, findRuntimeConfigFile } from "../config/runtime-config.js";
import { ConfigError } from "../config/yaml-source.js";
import type { AgentInfo, SkillInfo } from "../contract/types.js";
import { createEchoAgent, createSleepAgent, describeAgent } from "./builtin.js";
import { createCommandAgent, type CommandAgentOptions } from "./command-agent.js";
import type { AgentExecutor, AgentRegistry } from "./executor.js";
import { LlmProvider, createLlmAgent, resolveLlmProvider, type LlmProviderConfig } from "./llm.js";
import { LLM_ROLES } from "./roles.js";
import { SHELL_EXEC_SKILL, createShellAgent, type ShellAgentOptions } from "./shell.js";
import { defaultSkillDirs, loadSkills, type LoadedSkill, type SkillDir } from "./skills.js";

/** What {@link createAgentRegistry} builds a registry from. */
export interface AgentRegistryOptions {
  /** The node's data directory: user skills live in `<dataDir>/skills`. */
  dataDir: string;
  /** The project directory: workspace skills live in `<workspaceDir>/skills`. */
  workspaceDir?: string;
  /** The node's environment, scrubbed before any agent sees it. Defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Agents that come first; defaults to the built-in `echo` and `sleep`. */
  builtins?: AgentExecutor[];
  /** Settings of the `shell` agent, or false to leave it out. */
  shell?: ShellAgentOptions | false;
  /** Command agents from configuration (see {@link loadAgentsConfig}). */
  commandAgents?: CommandAgentConfig[];
  /** Limits applied to every command agent. */
  commandOptions?: Omit<CommandAgentOptions, "env">;
  /** The provider for the seven LLM roles; without one they are listed unavailable. */
  llm?: LlmProviderConfig;
  /** Skill lookup order; defaults to {@link defaultSkillDirs}. */
  skillDirs?: SkillDir[];
}

/**
 * The node's agents and skills: built-ins, `shell`, configured command agents
 * and the seven LLM roles. `list()` includes agents that cannot run here now;
 * {@link CoderClawAgentRegistry.describeAgents} says which and why.
 */
export class CoderClawAgentRegistry implements AgentRegistry {
  private readonly agents = new Map<string, AgentExecutor>();

  constructor(
    agents: readonly AgentExecutor[],
    private readonly skillDirs: readonly SkillDir[],
    private readonly env: Readonly<Record<string, string | undefined>>,
  ) {
    for (const agent of agents) this.agents.set(agent.info.id, agent);
  }

  get(agentId: string): AgentExecutor | undefined {
    return this.agents.get(agentId);
  }

  list(): AgentExecutor[] {
    return [...this.agents.values()];
  }

  /** Every agent with `available` and, when false, `unavailableReason`; probes run concurrently. */
  describeAgents(): Promise<AgentInfo[]> {
    return Promise.all(this.list().map((agent) => describeAgent(agent)));
  }

  /** Skill folders as found now (re-read on each call: folders may come and go), with where each came from. */
  loadedSkills(): LoadedSkill[] {
    return loadSkills(this.skillDirs, this.env);
  }

  /** `shell-exec` first (a skill folder cannot shadow it), then skill folders, first found by name winning. */
  listSkills(): SkillInfo[] {
    const folders = this.loadedSkills()
      .map((skill) => skill.info)
      .filter((info) => info.name !== SHELL_EXEC_SKILL.name);
    return [{ ...SHELL_EXEC_SKILL }, ...folders];
  }
}

/**
 * Build the registry from its parts. Agent ids must be unique: a configured
 * agent that reuses a built-in or role id is a {@link ConfigError} naming its
 * file and line.
 */
export function createAgentRegistry(options: AgentRegistryOptions): CoderClawAgentRegistry {
  const env = options.env ?? process.env;
  const agents: AgentExecutor[] = [...(options.builtins ?? [createEchoAgent(), createSleepAgent()])];
  if (options.shell !== false) agents.push(createShellAgent({ env, ...options.shell }));
  const provider = options.llm === undefined ? undefined : new LlmProvider(options.llm);
  const roles = LLM_ROLES.map((role) => createLlmAgent(role, provider));
  const taken = new Set([...agents, ...roles].map((agent) => agent.info.id));
  for (const config of options.commandAgents ?? []) {
    if (taken.has(config.id)) {
      throw new ConfigError(config.source.file, config.source.line, `${config.source.key}.id`, `agent id '${config.id}' is taken by a built-in agent`, config.source.col);
    }
    taken.add(config.id);
    agents.push(createCommandAgent(config, { env, ...options.commandOptions }));
  }
  agents.push(...roles);
  return new CoderClawAgentRegistry(agents, options.skillDirs ?? defaultSkillDirs(options), env);
}

/** Inputs of {@link loadAgentRegistry}. */
export interface LoadAgentRegistryOptions extends Omit<AgentRegistryOptions, "commandAgents" | "llm"> {
  /**
   * Configuration files, read in order. Defaults to {@link defaultConfigFiles}
   * of `workspaceDir`; none without one.
   */
  configFiles?: AgentsConfigFile[];
  /** The CoderClaw home whose runtime.yaml applies when the project has none (`--home`); default `$CODERCLAW_HOME`, else `~/.coderclaw`. */
  home?: string;
}

/**
 * The configuration files for a project directory: the runtime.yaml the runtime
 * configuration uses (the nearest `.coderClaw/runtime.yaml` from `workspaceDir`
 * up, else the one in the CoderClaw home, `home` when given) and the `team-agents.yaml` beside it.
 */
export function defaultConfigFiles(workspaceDir: string, env: Readonly<Record<string, string | undefined>> = process.env, home?: string): AgentsConfigFile[] {
  const runtime = findRuntimeConfigFile(workspaceDir, env, home) ?? join(workspaceDir, RUNTIME_CONFIG_PATH);
  return [
    { path: runtime, kind: "runtime" },
    { path: join(dirname(runtime), "team-agents.yaml"), kind: "team" },
  ];
}

/**
 * Read the configuration files and build the registry: command agents from
 * their `agents:` sections, the LLM provider from `llm:` and the
 * `CODERCLAW_LLM_*` variables. Throws ConfigError (code CONFIG) naming file,
 * line and key for any configuration mistake.
 */
export function loadAgentRegistry(options: LoadAgentRegistryOptions): CoderClawAgentRegistry {
  const env = options.env ?? process.env;
  const files = options.configFiles ?? (options.workspaceDir === undefined ? [] : defaultConfigFiles(options.workspaceDir, env, options.home));
  const config = loadAgentsConfig(files);
  const llm = resolveLlmProvider(config.llm, env);
  return createAgentRegistry({ ...options, env, commandAgents: config.agents, ...(llm === undefined ? {} : { llm }) });
}
