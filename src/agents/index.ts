/**
 * Agents and skills that run on a node: the shell agent (skill shell-exec),
 * command agents from configuration, the seven LLM roles, SKILL.md skills, and
 * the registry that puts them together. See docs/agents.md.
 */
export { createAgentRegistry, loadAgentRegistry, defaultConfigFiles, CoderClawAgentRegistry } from "./registry.js";
export type { AgentRegistryOptions, LoadAgentRegistryOptions } from "./registry.js";
export { agentSkills, type AgentLookup } from "./agent-skills.js";
export { createShellAgent, SHELL_EXEC_SKILL, SHELL_AGENT_ID, SHELL_EXEC_ID, DEFAULT_SHELL_TIMEOUT_MS } from "./shell.js";
export type { ShellAgentOptions } from "./shell.js";
export { createCommandAgent, DEFAULT_COMMAND_TIMEOUT_MS } from "./command-agent.js";
export type { CommandAgentOptions } from "./command-agent.js";
export { LlmProvider, createLlmAgent, resolveLlmProvider, LLM_ENV, NO_PROVIDER_REASON } from "./llm.js";
export type { LlmProviderConfig, ChatMessage, ChatResult } from "./llm.js";
export { LLM_ROLES } from "./roles.js";
export type { LlmRole } from "./roles.js";
export { loadSkills, loadSkill, defaultSkillDirs, bundledSkillsDir } from "./skills.js";
export type { LoadedSkill, SkillDir, SkillSource } from "./skills.js";
export { resolveWorkspace, REPOSITORY_PATH_KEY } from "./workspace.js";
export type { RepositoryPolicy, WorkspaceOptions } from "./workspace.js";
export { scrubEnv, ENV_ALLOWLIST } from "./env.js";
export type { EnvGrant } from "./env.js";
export { ExecutionFailedError, abortError } from "./errors.js";
export { runProcess } from "./process.js";
export type { RunProcessOptions, RunProcessResult } from "./process.js";
export { HeadTailBuffer, DEFAULT_OUTPUT_LIMIT } from "./output-limit.js";
export { findOnPath } from "./path-lookup.js";
export { loadAgentsConfig, parseAgentsConfig } from "../config/agents-config.js";
export type { AgentsConfig, AgentsConfigFile, CommandAgentConfig, LlmFileConfig } from "../config/agents-config.js";
export { ConfigError } from "../config/yaml-source.js";
