import { z } from "zod";
import { parseInput } from "./parse-input.js";
import { RouteSchema } from "./route.js";
import { MAX_PRIORITY, MIN_PRIORITY, type SubmitOptions, type TaskRequirements } from "./types.js";

/** Most labels, and most resources, one submission may require. */
export const MAX_REQUIREMENTS = 32;

/** A label or resource name: what configuration files and `--requires` may spell. */
export const RequirementNameSchema = z
  .string()
  .min(1, "must not be empty")
  .max(64, "must be at most 64 characters")
  .regex(/^[A-Za-z0-9._-]+$/, "may hold only letters, digits, '.', '_' and '-'")
  // As an object key it would set the prototype instead: the requirement would vanish unseen.
  .refine((n) => n !== "__proto__", "__proto__ is reserved");

/** {@link TaskRequirements} from outside. */
export const RequirementsSchema: z.ZodType<TaskRequirements> = z.strictObject({
  labels: z.array(RequirementNameSchema).max(MAX_REQUIREMENTS, `at most ${MAX_REQUIREMENTS} labels`).optional(),
  resources: z
    .record(RequirementNameSchema, z.number().min(0, "must be at least 0"))
    .refine((r) => Object.keys(r).length <= MAX_REQUIREMENTS, `at most ${MAX_REQUIREMENTS} resources`)
    .optional(),
});

/** Most artifact patterns one submission may name. */
export const MAX_ARTIFACT_PATTERNS = 32;

/** Glob patterns of files a task that carries code brings back: relative, inside its workspace. */
export const ArtifactPatternsSchema = z
  .array(
    z
      .string()
      .min(1, "must not be empty")
      .max(256, "must be at most 256 characters")
      .refine((p) => !p.startsWith("/") && !p.split("/").includes("..") && !p.includes("\0"), "must be a relative pattern inside the workspace, without '..'"),
  )
  .max(MAX_ARTIFACT_PATTERNS, `at most ${MAX_ARTIFACT_PATTERNS} patterns`);

/** {@link SubmitOptions} from outside (control socket, HTTP, embedding code); a deadline may come as a date or epoch milliseconds. */
export const SubmitOptionsSchema = z.strictObject({
  route: RouteSchema.optional(),
  priority: z
    .number()
    .int("must be an integer")
    .min(MIN_PRIORITY, `must be at least ${MIN_PRIORITY}`)
    .max(MAX_PRIORITY, `must be at most ${MAX_PRIORITY}`)
    .optional(),
  requires: RequirementsSchema.optional(),
  deadline: z
    .union([z.date(), z.number().int().min(0), z.iso.datetime({ offset: true })], "must be a date, epoch milliseconds or an ISO 8601 date-time")
    .transform((d) => (d instanceof Date ? d : new Date(d)))
    .optional(),
  waitForPeer: z.boolean().optional(),
  repo: z
    .string()
    .min(1)
    .max(4096, "must be at most 4096 characters")
    .refine((p) => p.startsWith("/") && !p.includes("\0"), "must be an absolute path")
    .optional(),
  artifacts: ArtifactPatternsSchema.optional(),
  commits: z.boolean().optional(),
})
  .refine((o) => o.artifacts === undefined || o.repo !== undefined, { error: "needs repo: artifacts come from the workspace of a task that carries code", path: ["artifacts"] })
  .refine((o) => o.commits !== true || o.repo !== undefined, { error: "needs repo: commits are made in the workspace of a task that carries code", path: ["commits"] });

/** `options` checked against {@link SubmitOptionsSchema}, refused as INVALID_INPUT naming the field. */
export function parseSubmitOptions(options: unknown): SubmitOptions {
  const parsed = parseInput(SubmitOptionsSchema, options ?? {});
  const out: SubmitOptions = {};
  if (parsed.route !== undefined) out.route = parsed.route;
  if (parsed.priority !== undefined) out.priority = parsed.priority;
  if (parsed.requires !== undefined) out.requires = parsed.requires;
  if (parsed.deadline !== undefined) out.deadline = parsed.deadline;
  if (parsed.waitForPeer !== undefined) out.waitForPeer = parsed.waitForPeer;
  if (parsed.repo !== undefined) out.repo = parsed.repo;
  if (parsed.artifacts !== undefined) out.artifacts = parsed.artifacts;
  if (parsed.commits === true) out.commits = true;
  return out;
}
