import type { AgentExecutor } from "./executor.js";
import { SHELL_AGENT_ID, SHELL_EXEC_ID } from "./shell.js";

/** Where {@link agentSkills} looks agents up. */
export interface AgentLookup {
  get(agentId: string): Pick<AgentExecutor, "skills"> | undefined;
}

/**
 * The skills a task of an agent uses, as authorisation sees them: what the agent
 * declares (`AgentExecutor.skills`; `shell` declares `shell-exec`, command agents
 * the `skills` of their configuration). An agent this node does not hold may
 * still be routed to a peer that does; a well-known agent keeps its skills then,
 * so the submitting node's check is never weaker than the executor's.
 */
export function agentSkills(registry?: AgentLookup): (agentId: string) => readonly string[] {
  return (agentId) => registry?.get(agentId)?.skills ?? (agentId === SHELL_AGENT_ID ? [SHELL_EXEC_ID] : []);
}
