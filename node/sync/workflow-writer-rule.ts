import type { WriterRule } from "../../protocols/sync/replica-authority.js";
import { isTaskIdOf } from "../../src/engine/task-id.js";
import { WORKFLOW_PREFIX, workflowContentProblem } from "../../src/workflows/workflow-store.js";
import { actorIdOf } from "../device-actor.js";

/**
 * Workflow documents are written by their coordinator only: the `coordinator`
 * the document names, which the workflow id itself must name (ids are minted
 * like task ids, bound to the device), every change made as its actor.
 */
export const WORKFLOW_WRITER_RULE: WriterRule = {
  prefix: WORKFLOW_PREFIX,
  writerOf(id, root) {
    const workflowId = id.slice(WORKFLOW_PREFIX.length);
    if (root("id") !== workflowId) return undefined;
    const coordinator = root("coordinator");
    return typeof coordinator === "string" && isTaskIdOf(workflowId, coordinator) ? coordinator : undefined;
  },
  problem: (root) => workflowContentProblem(root),
  actorOf: actorIdOf,
};
