import type { HttpWorkflows } from "../http/workflow-routes.js";
import type { DocumentStore } from "../../src/storage/document-store.js";
import { WORKFLOW_PREFIX } from "../../src/workflows/index.js";
import type { NodeWorkflows } from "./node-workflows.js";

/**
 * A node's workflows as the HTTP API serves them: the API has checked the
 * caller for every step; the node checks its owner too, coordinates, and names
 * the caller in the audit log.
 */
export function httpWorkflows(workflows: NodeWorkflows, store: Pick<DocumentStore, "onChange">): HttpWorkflows {
  return {
    start: (definition, input, startedBy) => workflows.startChecked(definition, input, startedBy),
    list: () => workflows.list(),
    get: (id) => workflows.get(id),
    cancel: (id) => workflows.cancel(id),
    watch: (id, listener) => store.onChange((change) => {
      if (change.id === WORKFLOW_PREFIX + id) listener();
    }),
    approvals: {
      list: () => workflows.approvals(),
      decide: (requestId, decision) => workflows.decide(requestId, decision),
      watch: (listener) => store.onChange((change) => {
        if (change.id.startsWith(WORKFLOW_PREFIX)) listener();
      }),
    },
  };
}
