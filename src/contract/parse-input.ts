import type { z } from "zod";
import { InvalidInputError } from "./errors.js";

/**
 * Parse an input from outside with `schema`. The first problem is refused as an
 * {@link InvalidInputError} whose `field` is the dotted path to it (none for the
 * whole value); unknown fields of strict objects are named.
 */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : undefined;
  const message = issue.code === "unrecognized_keys" ? `unknown field(s): ${issue.keys.join(", ")}` : issue.message;
  throw new InvalidInputError(message, field);
}
