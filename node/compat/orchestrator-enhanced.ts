/**
 * `coderclaw/coderclaw/orchestrator-enhanced`: upstream CoderClaw's Phase 2
 * name for the same orchestrator; Phase 1 code keeps working unchanged.
 *
 * @packageDocumentation
 */
import "../../src/polyfills.js";
import { AgentOrchestrator } from "./agent-orchestrator.js";

export { AgentOrchestrator as EnhancedAgentOrchestrator, type PendingApproval, type Task, type TaskStatus, type Workflow, type WorkflowStep } from "./agent-orchestrator.js";

/** Upstream Phase 2's shared instance. */
export const globalEnhancedOrchestrator = new AgentOrchestrator();
