import { isAbsolute } from "node:path";
import { stringify } from "yaml";
import { MAX_CONFIG_BYTES, parseAgentsConfig, type CommandAgentConfig } from "../config/agents-config.js";
import { ConfigError, configErrorAt, parseYamlSource } from "../config/yaml-source.js";
import { packageNameSchema } from "./package-name.js";

/** The one file a published agent's tree holds: a team-agents file declaring that agent alone. */
export const PUBLISHED_AGENT_FILE = "team-agents.yaml";

/** One agent of a team-agents file, ready to publish. */
export interface AgentToPublish {
  /** The registry name, `<team>/<agent id>`. */
  name: string;
  id: string;
  /** A team-agents file declaring this agent alone: the bytes the publication signs. */
  text: string;
}

/**
 * Why a published agent definition may not run as written: its working
 * directory must stay inside the task's workspace, since the publisher does
 * not know the members' disks and a path there would reach outside the
 * task's sandboxed tree; and it may not pass members' environment variables
 * through, which would hand every member's secrets (API keys, tokens) to a
 * program one publisher chose.
 */
function publishedAgentProblem(agent: CommandAgentConfig): { key: string; message: string } | undefined {
  if ((agent.env.pass ?? []).length > 0) {
    return { key: "env", message: "a published agent may not pass a member's environment variables through (a list); set fixed values with a map, or declare the agent in the member's own configuration" };
  }
  if (agent.cwd !== undefined && (isAbsolute(agent.cwd) || agent.cwd.split(/[\\/]/).includes(".."))) {
    return { key: "cwd", message: "a published agent's cwd must be a path inside the task's workspace (relative, without ..)" };
  }
  return undefined;
}

/**
 * Split a team-agents file into one publication per agent, named
 * `<team>/<agent id>`. The whole file is checked as the node checks its own
 * (size limit, schema, placeholders), and then what a publication adds: an id
 * that is a registry name part, a working directory inside the workspace.
 * Every refusal is a {@link ConfigError} naming file, line and key.
 */
export function splitTeamAgents(text: string, file: string, team: string): AgentToPublish[] {
  const agents = parseAgentsConfig(text, { path: file, kind: "team" }).agents;
  const source = parseYamlSource(text, file, { maxBytes: MAX_CONFIG_BYTES });
  if (agents.length === 0) throw new ConfigError(file, 1, "agents", "declares no agent to publish");
  const raw = (source.doc.toJS({ maxAliasCount: 100 }) as { agents: unknown[] }).agents;
  return agents.map((agent, i) => {
    const name = `${team}/${agent.id}`;
    if (!packageNameSchema.safeParse(name).success) {
      throw configErrorAt(source, ["agents", i, "id"], `a published agent's id must be lowercase letters, digits and single hyphens (it is published as ${team}/<id>)`);
    }
    const problem = publishedAgentProblem(agent);
    if (problem !== undefined) throw configErrorAt(source, ["agents", i, problem.key], problem.message);
    return { name, id: agent.id, text: stringify({ agents: [raw[i]] }) };
  });
}

/**
 * Read a published agent's file (fetched from any member: checked here as
 * any input from outside): it must declare exactly the agent its
 * publication names, under the rules {@link splitTeamAgents} applies.
 */
export function parsePublishedAgent(text: string, where: string, name: string): CommandAgentConfig {
  const agents = parseAgentsConfig(text, { path: where, kind: "team" }).agents;
  const id = name.slice(name.indexOf("/") + 1);
  const agent = agents[0];
  if (agents.length !== 1 || agent === undefined) throw new ConfigError(where, 1, "agents", `must declare exactly one agent, ${id}; it declares ${agents.length}`);
  if (agent.id !== id) throw new ConfigError(where, agent.source.line, `${agent.source.key}.id`, `is ${agent.id}, but the publication names ${name}`);
  const problem = publishedAgentProblem(agent);
  if (problem !== undefined) throw new ConfigError(where, agent.source.line, `${agent.source.key}.${problem.key}`, problem.message);
  return agent;
}
