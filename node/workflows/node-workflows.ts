import { CoderClawError } from "../../src/contract/errors.js";
import type { TransportAdapter } from "../../src/contract/types.js";
import type { TaskAccess } from "../../src/security/service.js";
import type { AuditBody } from "../../src/security/index.js";
import type { DocumentStore } from "../../src/storage/document-store.js";
import { createWorkflowCoordinator, documentWorkflowStore, type ApprovalEvent, type WorkflowCoordinator, type WorkflowDefinition, type WorkflowRecord, type WorkflowRuntime, type WorkflowStarter } from "../../src/workflows/index.js";
import { AuditedAdapter } from "../security/audited-adapter.js";
import { actorIdOf } from "../device-actor.js";
import { newTaskId } from "../../src/engine/task-id.js";

/** What a node's workflows need of the node. */
export interface NodeWorkflowsDeps {
  /** The node's runtime: steps are placed as its tasks are. */
  adapter: TransportAdapter;
  store: DocumentStore;
  /** The node's device: it coordinates, so it submits every step, as the owner does through the control socket. */
  peerId: string;
  authorize: (access: TaskAccess) => Promise<{ allowed: boolean; reason?: string }>;
  record: (body: AuditBody) => Promise<unknown>;
  onError?: (error: Error) => void;
  /** Approval requests asked and decided (see node-approvals.ts). */
  onApproval?: (event: ApprovalEvent) => void;
}

/** The workflows a node coordinates: started by its owner, each step authorised and audited as the owner's submission. */
export interface NodeWorkflows extends WorkflowCoordinator {
  /**
   * Start a workflow after checking the owner may submit every one of its steps
   * (a workflow that would fail half-way on a refusal is refused whole, naming
   * the step); the start is audited, naming `startedBy` (absent: the owner),
   * who is kept in the record.
   */
  startChecked(definition: WorkflowDefinition, input?: string | Record<string, string>, startedBy?: WorkflowStarter): Promise<WorkflowRecord>;
}

/** A node's workflow coordinator, over its store (`workflow/` documents) and its runtime. */
export function createNodeWorkflows(deps: NodeWorkflowsDeps): NodeWorkflows {
  const owned = new AuditedAdapter(deps.adapter, deps.record, deps.peerId);
  const permit = async (access: TaskAccess): Promise<void> => {
    const decision = await deps.authorize(access);
    if (!decision.allowed) throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? `${access.action} denied`);
  };
  const runtime: WorkflowRuntime = {
    submitTask: async (request, options) => {
      await permit({ action: "task.submit", ...(request.agentId !== undefined && { agentId: request.agentId }) });
      return owned.submitTask(request, options);
    },
    getTaskState: (id) => deps.adapter.getTaskState(id),
    streamTaskUpdates: (id, options) => deps.adapter.streamTaskUpdates(id, options),
    cancelTask: async (id) => {
      await permit({ action: "task.cancel", taskId: id });
      return owned.cancelTask(id);
    },
    listTasks: (filter) => deps.adapter.listTasks(filter),
  };
  const coordinator = createWorkflowCoordinator({
    runtime,
    store: documentWorkflowStore(deps.store, { actor: actorIdOf(deps.peerId) }),
    coordinator: { id: deps.peerId, newId: () => newTaskId(Date.now(), deps.peerId) }, ...(deps.onError !== undefined && { onError: (_id, e) => deps.onError!(e) }), ...(deps.onApproval !== undefined && { onApproval: deps.onApproval }) });
  return {
    ...coordinator,
    async startChecked(definition, input, startedBy) {
      const userId = startedBy?.subject ?? deps.peerId;
      for (const step of definition.steps) {
        const decision = await deps.authorize({ action: "task.submit", ...(step.agent !== undefined && { agentId: step.agent }) });
        if (!decision.allowed) {
          await deps.record({ action: "workflow.start", userId, deviceId: deps.peerId, resource: definition.name, result: "denied", reason: `step ${step.id}: ${decision.reason ?? "denied"}` });
          throw new CoderClawError("PERMISSION_DENIED", `step ${step.id} (agent ${step.agent ?? "default"}): ${decision.reason ?? "denied"}`);
        }
      }
      const record = await coordinator.start(definition, input, startedBy);
      await deps.record({ action: "workflow.start", userId, deviceId: deps.peerId, resource: record.id, result: "allowed", reason: `${definition.name}, ${definition.steps.length} steps` });
      return record;
    },
  };
}
