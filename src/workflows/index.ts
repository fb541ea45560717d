export { checkWorkflow, DEFAULT_APPROVAL_TIMEOUT_MS, formatTarget, parseTarget, targetOptions, WORKFLOW_LIMITS, type RetryPolicy, type StepDraft, type StepTarget, type WorkflowDefinition, type WorkflowDraft, type WorkflowStep } from "./definition.js";
export { fillStepInput, parseStepInput, type InputPart, type InputTemplate, type InputValues } from "./input-template.js";
export { createWorkflowCoordinator, workflowSession, type ApprovalEvent, type OpenApproval, type WorkflowCoordinator, type WorkflowCoordinatorOptions, type WorkflowRuntime } from "./workflow-coordinator.js";
export { MAX_WORKFLOW_FILE_BYTES, parseWorkflowFile } from "./workflow-file.js";
export { approvalsToAsk, AWAITING_APPROVAL, backoffAfter, newWorkflowRecord, stepEnded, stepsToStart, workflowOutcome, workflowOutcomeAfter, type ApprovalDecision, type ApprovalRequest, type StepAttempt, type StepRecord, type StepStatus, type WorkflowRecord, type WorkflowStarter, type WorkflowStatus } from "./workflow-record.js";
export { documentWorkflowStore, WORKFLOW_PREFIX, type WorkflowChange, type WorkflowStore } from "./workflow-store.js";
export { readWorkflowSource, readWorkflowTemplate, workflowTemplates, type WorkflowSource } from "./templates.js";
