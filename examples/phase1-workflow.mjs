// Upstream CoderClaw's Phase 1 orchestrator, called as upstream code calls it: steps that depend
// on each other by their task text, run to the end; each task's output comes back by task id.
// The steps use the built-in `echo` agent so this runs without an LLM; with a provider configured,
// use roles such as architecture-advisor, code-creator and code-reviewer, or `remote:auto`.
// Run: node examples/phase1-workflow.mjs   (data goes to $CODERCLAW_HOME or ~/.coderclaw;
// through the node running there, if one is, which keeps the workflow going across restarts)
import { globalOrchestrator } from "coderclaw/coderclaw";

const feature = "a login page";
const steps = [
  { role: "echo", task: `Analyze the architecture for implementing: ${feature}` },
  { role: "echo", task: `Implement the feature: ${feature}`, dependsOn: [`Analyze the architecture for implementing: ${feature}`] },
  { role: "echo", task: `Generate tests for: ${feature}`, dependsOn: [`Implement the feature: ${feature}`] },
  { role: "echo", task: `Review the implementation of: ${feature}`, dependsOn: [`Implement the feature: ${feature}`] },
];

const workflow = globalOrchestrator.createWorkflow(steps);
const results = await globalOrchestrator.executeWorkflow(workflow.id);
console.log("status:", globalOrchestrator.getWorkflowStatus(workflow.id).status);
for (const [taskId, output] of results) {
  const task = workflow.tasks.get(taskId);
  console.log(`${task.description} (${task.dependencies.length} before it): ${output.length} characters`);
}
