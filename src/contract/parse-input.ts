import type { z } from "zod";
import { InvalidInputError } from "./errors.js";

/**
 * Parse an input from outside with `schema`. The first problem is refused as an
 * {@link InvalidInputError} whose `field` is the dotted path to it, under `base`
 * when given (none for the whole value); an unknown field of a strict object is
 * named, and the path leads to it.
 */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, base = ""): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [base, ...issue.path.map(String)].filter((p) => p !== "").join(".");
  if (issue.code === "unrecognized_keys") {
    throw new InvalidInputError(`unknown field(s): ${issue.keys.join(", ")}`, [path, issue.keys[0] ?? ""].filter((p) => p !== "").join("."));
  }
  throw new InvalidInputError(issue.message, path === "" ? undefined : path);
}
