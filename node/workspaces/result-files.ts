import { artifactMatcher } from "../../src/workspace/artifact-match.js";
import type { Manifest } from "../../src/workspace/manifest.js";
import { RESULT_ARTIFACTS_DIR, RESULT_COMMITS_PATH, RESULT_PATCH_PATH } from "../../src/workspace/task-spec.js";

/** A file of a task's result: the patch, the agent's commits, or an artifact (its path in the workspace), with its size and chunk digests. */
export interface ResultFile {
  readonly kind: "patch" | "commits" | "artifact";
  readonly path: string;
  readonly size: number;
  readonly chunks: readonly string[];
}

/** What a task asked of its result: a result bringing back anything else is refused, before its bytes are fetched. */
export interface ResultRequest {
  readonly taskId: string;
  /** The artifact patterns the task was submitted with. */
  readonly artifacts: readonly string[];
}

/**
 * The files of a result's manifest, or why the result is refused: an entry
 * that is not a file, or an artifact none of the task's patterns names (the
 * names are its executor's word).
 */
export function readResultFiles(manifest: Manifest, request: ResultRequest): { files: ResultFile[] } | { refusal: string } {
  const asked = artifactMatcher(request.artifacts);
  const files: ResultFile[] = [];
  for (const entry of manifest.entries) {
    if (entry.kind !== "file") return { refusal: `task ${request.taskId}'s result holds "${entry.path.slice(0, 200)}", which is not a file: refused` };
    if (entry.path === RESULT_PATCH_PATH) files.push({ kind: "patch", path: entry.path, size: entry.size, chunks: entry.chunks });
    else if (entry.path === RESULT_COMMITS_PATH) files.push({ kind: "commits", path: entry.path, size: entry.size, chunks: entry.chunks });
    else if (entry.path.startsWith(`${RESULT_ARTIFACTS_DIR}/`)) {
      const artifact = entry.path.slice(RESULT_ARTIFACTS_DIR.length + 1);
      if (!asked(artifact)) return { refusal: `task ${request.taskId}'s result brings back "${artifact.slice(0, 200)}", and ${unaskedBecause(request.artifacts)}: refused` };
      files.push({ kind: "artifact", path: artifact, size: entry.size, chunks: entry.chunks });
    }
  }
  return { files };
}

function unaskedBecause(patterns: readonly string[]): string {
  return patterns.length === 0 ? "it was submitted with no artifact patterns" : `none of the artifact patterns it was submitted with names it (${patterns.join(", ")})`;
}
