import ms from "ms";
import { z } from "zod";
import { CoderClawError } from "../contract/errors.js";
import { configErrorAt, parseYamlSource, validateYaml } from "../config/yaml-source.js";
import { checkWorkflow, type WorkflowDefinition, type WorkflowDraft } from "./definition.js";

/** Largest workflow file read. */
export const MAX_WORKFLOW_FILE_BYTES = 1024 * 1024;

/** A duration as people write it (`90s`, `10m`, `2h`) or a number of milliseconds. */
const duration = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === "number") return value;
  const parsed = ms(value as ms.StringValue) as number | undefined;
  if (typeof parsed === "number" && Number.isFinite(parsed) && parsed >= 0) return parsed;
  ctx.addIssue({ code: "custom", message: `"${value.slice(0, 40)}" is not a duration such as 500ms, 90s, 10m or 2h` });
  return z.NEVER;
});

const stepSchema = z
  .object({
    id: z.string(),
    agent: z.string().optional(),
    description: z.string().optional(),
    input: z.string().default("${input}"),
    target: z.string().optional(),
    dependsOn: z.array(z.string()).optional(),
    retry: z.object({ attempts: z.number().int().optional(), backoff: duration.optional(), factor: z.number().optional(), maxBackoff: duration.optional() }).strict().optional(),
    timeout: duration.optional(),
    continueOnFailure: z.boolean().optional(),
    approval: z.literal("required").optional(),
    approvalTimeout: duration.optional(),
  })
  .strict();

const fileSchema = z.object({ name: z.string(), description: z.string().optional(), steps: z.array(stepSchema) }).strict();

/**
 * Read a workflow file (YAML): refused with a {@link ConfigError} naming file,
 * line and key, whether the YAML, a field's form or the graph (an unknown
 * dependency, a cycle, an input naming a step it does not depend on) is wrong.
 */
export function parseWorkflowFile(text: string, file: string): WorkflowDefinition {
  const source = parseYamlSource(text, file, { maxBytes: MAX_WORKFLOW_FILE_BYTES });
  const raw = validateYaml(source, fileSchema);
  // Aliases repeat text without its bytes being in the file: a 1 MiB file could give 500 steps of 200 KiB each, a
  // workflow document of 100 MB to store and replicate. The steps hold no more than a file may.
  let inputBytes = 0;
  for (const s of raw.steps) inputBytes += Buffer.byteLength(s.input);
  if (inputBytes > MAX_WORKFLOW_FILE_BYTES) throw configErrorAt(source, ["steps"], `inputs of ${inputBytes} bytes, over the ${MAX_WORKFLOW_FILE_BYTES} a workflow file may hold (aliases repeat text)`);
  const draft: WorkflowDraft = {
    name: raw.name,
    description: raw.description,
    steps: raw.steps.map((s) => ({
      id: s.id,
      agent: s.agent,
      description: s.description,
      input: s.input,
      target: s.target,
      dependsOn: s.dependsOn,
      ...(s.retry !== undefined && {
        retry: {
          ...(s.retry.attempts !== undefined && { attempts: s.retry.attempts }),
          ...(s.retry.backoff !== undefined && { backoffMs: s.retry.backoff }),
          ...(s.retry.factor !== undefined && { factor: s.retry.factor }),
          ...(s.retry.maxBackoff !== undefined && { maxBackoffMs: s.retry.maxBackoff }),
        },
      }),
      timeoutMs: s.timeout,
      continueOnFailure: s.continueOnFailure,
      approval: s.approval,
      approvalTimeoutMs: s.approvalTimeout,
    })),
  };
  try {
    return checkWorkflow(draft);
  } catch (err) {
    if (!(err instanceof CoderClawError) || err.field === undefined) throw err;
    throw configErrorAt(source, fileKeyPath(err.field), err.message.slice(err.field.length + 2));
  }
}

/** `steps[3].retry.backoffMs` as a path into the file: the file's own key names. */
function fileKeyPath(field: string): Array<string | number> {
  const path: Array<string | number> = [];
  for (const part of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (part[2] !== undefined) path.push(Number(part[2]));
    else path.push(FILE_KEYS[part[1]!] ?? part[1]!);
  }
  return path;
}

const FILE_KEYS: Record<string, string> = { timeoutMs: "timeout", backoffMs: "backoff", maxBackoffMs: "maxBackoff", approvalTimeoutMs: "approvalTimeout" };
