import { z } from "zod";
import { InvalidInputError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import { MAX_WORKFLOW_FILE_BYTES, parseWorkflowFile, type WorkflowRecord } from "../../src/workflows/index.js";
import type { NodeWorkflows } from "./node-workflows.js";

/** Administrative calls on a node's workflows, served over the control socket. */
export const WORKFLOW_METHODS = ["workflow.start", "workflow.list", "workflow.get", "workflow.cancel"] as const;
export type WorkflowMethod = (typeof WORKFLOW_METHODS)[number];

const idSchema = z.uuid();
/** A workflow's input: a text, or named values (`${input.NAME}`). */
export const WorkflowInputSchema = z.union([z.string().max(256 * 1024), z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/), z.string().max(256 * 1024)).refine((r) => Object.keys(r).length <= 64, "at most 64 named values")]);
const schemas = {
  // The file travels as text: the node parses it here, at its edge, naming file, line and key.
  "workflow.start": z.strictObject({ file: z.string().min(1).max(4096), text: z.string().max(MAX_WORKFLOW_FILE_BYTES), input: WorkflowInputSchema.optional() }),
  "workflow.list": z.strictObject({ limit: z.number().int().min(1).max(10_000).optional() }).optional(),
  "workflow.get": z.strictObject({ id: idSchema }),
  "workflow.cancel": z.strictObject({ id: idSchema }),
} satisfies Record<WorkflowMethod, z.ZodType>;

/** True when `method` is one of {@link WORKFLOW_METHODS}. */
export function isWorkflowMethod(method: string): method is WorkflowMethod {
  return (WORKFLOW_METHODS as readonly string[]).includes(method);
}

/** One line per workflow: what a listing shows. */
export function workflowSummary(r: WorkflowRecord): Record<string, unknown> {
  const counts: Record<string, number> = {};
  for (const s of Object.values(r.steps)) counts[s.status] = (counts[s.status] ?? 0) + 1;
  return { id: r.id, ...(r.coordinator !== undefined && { coordinator: r.coordinator }), name: r.definition.name, status: r.status, createdAt: new Date(r.createdAt).toISOString(), ...(r.endedAt !== undefined && { endedAt: new Date(r.endedAt).toISOString() }), ...(r.error !== undefined && { error: r.error }), steps: counts };
}

/** Run one workflow call against `workflows`; parameters are validated here. */
export async function runWorkflowAdmin(workflows: NodeWorkflows, method: WorkflowMethod, raw: unknown): Promise<unknown> {
  switch (method) {
    case "workflow.start": {
      const { file, text, input } = parseInput(schemas[method], raw);
      const record = await workflows.startChecked(parseWorkflowFile(text, file), input);
      return workflowSummary(record);
    }
    case "workflow.list": {
      const limit = parseInput(schemas[method], raw)?.limit ?? 100;
      return (await workflows.list()).slice(0, limit).map(workflowSummary);
    }
    case "workflow.get": {
      const { id } = parseInput(schemas[method], raw);
      const record = await workflows.get(id);
      if (record === undefined) throw new InvalidInputError(`no workflow ${id}`, "id");
      return record;
    }
    case "workflow.cancel":
      return { cancelled: await workflows.cancel(parseInput(schemas[method], raw).id) };
  }
}
