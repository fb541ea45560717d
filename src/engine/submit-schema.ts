import { z } from "zod";
import { InvalidInputError } from "../contract/errors.js";
import { MetadataSchema } from "../contract/metadata.js";
import { parseInput } from "../contract/parse-input.js";
import type { TaskSubmitRequest } from "../contract/types.js";

/** Default limit on `input`, in UTF-8 bytes. */
export const DEFAULT_MAX_INPUT_BYTES = 1024 * 1024;
const MAX_DESCRIPTION_BYTES = 16 * 1024;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
/** Agent and skill ids: lowercase words joined by dots, dashes or underscores. */
export const AGENT_ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Session ids end up in directory names, so they are restricted to a safe alphabet. */
export const SESSION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");

const schemas = new Map<number, ReturnType<typeof buildSchema>>();

/** Schemas are built once per input limit: building one costs far more than parsing with it. */
function schema(maxInputBytes: number): ReturnType<typeof buildSchema> {
  let s = schemas.get(maxInputBytes);
  if (!s) {
    s = buildSchema(maxInputBytes);
    schemas.set(maxInputBytes, s);
  }
  return s;
}

function buildSchema(maxInputBytes: number) {
  return z.strictObject({
    agentId: z.string().regex(AGENT_ID_RE, "must be a lowercase id like 'echo' or 'code-reviewer'").optional(),
    description: z
      .string({ error: (i) => (i.input === undefined ? "is required" : "must be a string") })
      .refine((s) => s.trim().length > 0, "must not be empty")
      .refine((s) => utf8Bytes(s) <= MAX_DESCRIPTION_BYTES, `must be at most ${MAX_DESCRIPTION_BYTES} bytes`),
    input: z
      .string({ error: (i) => (i.input === undefined ? "is required" : "must be a string") })
      .refine((s) => utf8Bytes(s) <= maxInputBytes, `must be at most ${maxInputBytes} bytes`),
    model: z.string().min(1).max(256).optional(),
    thinking: z.string().min(1).max(64).optional(),
    sessionId: z.string().regex(SESSION_ID_RE, "must be 1-128 characters of A-Z a-z 0-9 . _ -").optional(),
    parentTaskId: z.string().regex(UUID_RE, "must be a task id (UUID)").optional(),
    metadata: MetadataSchema.optional(),
  });
}

/**
 * Parse a submit request from outside. Unknown fields, wrong types and limits are
 * refused with an {@link InvalidInputError} whose `field` names the first problem.
 */
export function parseSubmitRequest(input: unknown, maxInputBytes = DEFAULT_MAX_INPUT_BYTES): TaskSubmitRequest {
  return parseInput<TaskSubmitRequest>(schema(maxInputBytes), input);
}

/** Throws unless `id` is a task id (UUID). */
export function assertTaskId(id: unknown): asserts id is string {
  if (typeof id !== "string" || !UUID_RE.test(id)) throw new InvalidInputError("must be a task id (UUID)", "taskId");
}
