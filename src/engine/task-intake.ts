import { AgentUnavailableError, CoderClawError } from "../contract/errors.js";
import type { TaskPlacement, TaskState, TaskSubmitRequest } from "../contract/types.js";
import type { AgentExecutor, AgentRegistry } from "../agents/executor.js";
import type { ExecutionEnvironment } from "./execution-environment.js";
import { parseSubmitRequest } from "./submit-schema.js";
import type { TaskRecord } from "./task-document.js";
import { isTaskIdOf, newTaskId } from "./task-id.js";

/** What a submission is checked against; see the fields of the same names in `TaskEngineOptions`. */
export interface IntakeSettings {
  agents: AgentRegistry;
  environment: ExecutionEnvironment;
  maxInputBytes: number;
  defaultAgentId: string;
  executorId: string | undefined;
}

/**
 * A submission checked and made a new task, not stored yet: its record and the
 * agent that runs it. Whatever cannot run here (a malformed request, a session
 * or repository not allowed, an agent missing or unavailable, a sandbox missing
 * for work from another device) is refused before anything is stored: the
 * submitter hears why, and nothing is left to fail later. `workspace` resolves
 * once the task's workspace directory, begun now, is made (or could not be).
 *
 * @param submittedBy The device that sent the task from another node, if one did.
 */
export async function takeIn(input: unknown, submittedBy: string | undefined, settings: IntakeSettings): Promise<{ record: TaskRecord; agent: AgentExecutor; workspace: Promise<void> }> {
  const request = parseSubmitRequest(input, settings.maxInputBytes);
  settings.environment.assertWorkspaceAllowed(request);
  const agentId = request.agentId ?? settings.defaultAgentId;
  const agent = settings.agents.get(agentId);
  if (!agent) throw new AgentUnavailableError(agentId, "no such agent on this node", "UNKNOWN_AGENT");
  const availability = await agent.availability();
  if (!availability.available) throw new AgentUnavailableError(agentId, availability.reason);
  settings.environment.assertSandboxFor(agent, submittedBy, request);
  const workspaces = settings.environment.workspaces;
  if (workspaces?.carriesCode(request) === true) workspaces.assertAccepted(request, submittedBy);
  return { record: newRecord(request, agentId, submittedBy, settings), agent, workspace: settings.environment.prepareWorkspace(request) };
}

/**
 * A submission checked and made a new task that a dispatcher places on some
 * member: the request is checked as for {@link takeIn}, but the agent need not
 * exist here (the member that runs the task checks it).
 */
export function takeInForPlacement(input: unknown, placement: TaskPlacement, settings: IntakeSettings, id?: string): TaskRecord {
  const request = parseSubmitRequest(input, settings.maxInputBytes);
  settings.environment.assertWorkspaceAllowed(request);
  const record = newRecord(request, request.agentId ?? settings.defaultAgentId, undefined, settings);
  if (id !== undefined) {
    if (settings.executorId === undefined || !isTaskIdOf(id, settings.executorId)) throw new CoderClawError("INVALID_INPUT", `task id ${id} is not one of this node's`, { field: "id" });
    record.state.id = id;
  }
  record.state.placement = { ...placement };
  return record;
}

function newRecord(request: TaskSubmitRequest, agentId: string, submittedBy: string | undefined, settings: IntakeSettings): TaskRecord {
  const now = new Date();
  const state: TaskState = { id: newTaskId(now.getTime(), settings.executorId), status: "pending", agentId, description: request.description, createdAt: now };
  if (submittedBy !== undefined) state.submittedBy = submittedBy;
  if (request.sessionId !== undefined) state.sessionId = request.sessionId;
  if (request.parentTaskId !== undefined) state.parentTaskId = request.parentTaskId;
  if (request.metadata !== undefined) state.metadata = request.metadata;
  if (settings.executorId !== undefined) state.executorId = settings.executorId;
  return { request: { ...request, agentId }, state, events: [] };
}
