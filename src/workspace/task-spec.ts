import { z } from "zod";
import { parseInput } from "../contract/parse-input.js";
import { ArtifactPatternsSchema } from "../contract/submit-options.js";
import { DIGEST_PATTERN } from "./manifest.js";

/** Metadata key under which a task names the code it carries (part of the signed request). */
export const WORKSPACE_KEY = "workspace";

/** What a task carries: the snapshot's tree, what it weighs, and the artifacts to bring back. */
export const WorkspaceSpecSchema = z.strictObject({
  tree: z.string().regex(DIGEST_PATTERN, "must be a tree id (64 lowercase hex characters)"),
  bytes: z.number().int().nonnegative(),
  files: z.number().int().nonnegative(),
  artifacts: ArtifactPatternsSchema.optional(),
  /** The workspace is a git repository whose HEAD is the snapshot, and the agent's commits come back as a series (`git format-patch`). */
  commits: z.literal(true).optional(),
});

/** See {@link WorkspaceSpecSchema}. */
export type WorkspaceSpec = z.infer<typeof WorkspaceSpecSchema>;

/**
 * The code a request carries, or undefined when it carries none. A malformed
 * spec is refused naming `metadata.workspace.<field>`: it came from another
 * device and is read before anything is fetched.
 */
export function workspaceSpecOf(metadata: Readonly<Record<string, unknown>> | undefined): WorkspaceSpec | undefined {
  const raw = metadata?.[WORKSPACE_KEY];
  if (raw === undefined) return undefined;
  return parseInput<WorkspaceSpec>(WorkspaceSpecSchema, raw, `metadata.${WORKSPACE_KEY}`);
}

/**
 * What a task that carried code changed, recorded with its completion (the
 * `workspace` field of the completed event's data): the result is itself a
 * tree, held by the executor, with the patch at {@link RESULT_PATCH_PATH} and
 * each artifact under {@link RESULT_ARTIFACTS_DIR}.
 */
export interface WorkspaceResult {
  /** The result tree's id: fetch it from `heldBy`. */
  tree: string;
  /** Device id of the node that holds the result's blobs. */
  heldBy: string;
  /** The snapshot the changes are against. */
  base: string;
  /** Bytes of the patch; 0 when nothing changed. */
  patchBytes: number;
  /** Paths changed, by kind. */
  changed: { added: number; modified: number; deleted: number };
  /** Artifacts brought back, by path in the workspace. */
  artifacts: Array<{ path: string; size: number }>;
  /** For a task submitted with `commits`: how many commits the agent made, which the result holds at {@link RESULT_COMMITS_PATH}. */
  commits?: number;
}

export const RESULT_PATCH_PATH = "changes.patch";
export const RESULT_ARTIFACTS_DIR = "artifacts";
/** The agent's commits, as `git format-patch --stdout` writes them: an mbox for `git am`. */
export const RESULT_COMMITS_PATH = "commits.mbox";

const WorkspaceResultSchema = z.object({
  tree: z.string().regex(DIGEST_PATTERN),
  heldBy: z.string().min(1).max(128),
  base: z.string().regex(DIGEST_PATTERN),
  patchBytes: z.number().int().nonnegative(),
  changed: z.object({ added: z.number().int().nonnegative(), modified: z.number().int().nonnegative(), deleted: z.number().int().nonnegative() }),
  artifacts: z.array(z.object({ path: z.string().min(1).max(4096), size: z.number().int().nonnegative() })).max(100_000),
  commits: z.number().int().nonnegative().optional(),
});

/** The result recorded in a completed event's data, or undefined when it records none; refused when malformed (it replicated from elsewhere). */
export function workspaceResultOf(data: unknown): WorkspaceResult | undefined {
  if (typeof data !== "object" || data === null || !(WORKSPACE_KEY in data)) return undefined;
  return parseInput<WorkspaceResult>(WorkspaceResultSchema, (data as Record<string, unknown>)[WORKSPACE_KEY], `data.${WORKSPACE_KEY}`);
}
