export { checkWorkflow, formatTarget, parseTarget, targetOptions, WORKFLOW_LIMITS, type RetryPolicy, type StepDraft, type StepTarget, type WorkflowDefinition, type WorkflowDraft, type WorkflowStep } from "./definition.js";
export { fillStepInput, parseStepInput, type InputPart, type InputTemplate, type InputValues } from "./input-template.js";
export { createWorkflowCoordinator, workflowSession, type WorkflowCoordinator, type WorkflowCoordinatorOptions, type WorkflowRuntime } from "./workflow-coordinator.js";
export { MAX_WORKFLOW_FILE_BYTES, parseWorkflowFile } from "./workflow-file.js";
export { backoffAfter, newWorkflowRecord, stepEnded, stepsToStart, workflowOutcome, type StepAttempt, type StepRecord, type StepStatus, type WorkflowRecord, type WorkflowStatus } from "./workflow-record.js";
export { documentWorkflowStore, WORKFLOW_PREFIX, type WorkflowChange, type WorkflowStore } from "./workflow-store.js";
export { readWorkflowSource, workflowTemplates, type WorkflowSource } from "./templates.js";
