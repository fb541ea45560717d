import type { WriterRule } from "../../protocols/sync/replica-authority.js";
import { taskContentProblem } from "../../src/engine/task-document.js";
import { isTaskIdOf } from "../../src/engine/task-id.js";
import { actorIdOf } from "../device-actor.js";

/**
 * Task documents are written by their executor only: the `executorId` of the
 * submission fields, which the task id itself must name (see `isTaskIdOf`),
 * every change made as the executor's actor.
 */
export const TASK_WRITER_RULE: WriterRule = {
  prefix: "task/",
  writerOf(id, root) {
    const taskId = id.slice("task/".length);
    if (root("id") !== taskId) return undefined;
    const spec = root("spec");
    if (typeof spec !== "string") return undefined;
    try {
      const executor = (JSON.parse(spec) as { executorId?: unknown }).executorId;
      return typeof executor === "string" && isTaskIdOf(taskId, executor) ? executor : undefined;
    } catch {
      return undefined;
    }
  },
  problem: taskContentProblem,
  actorOf: actorIdOf,
};
