import { isAbsolute, join, normalize } from "node:path";
import { CoderClawError, InvalidInputError } from "../contract/errors.js";
import type { TaskSubmitRequest } from "../contract/types.js";

/** Session ids that can name a directory: no separators, no dot segments, bounded. */
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Metadata key through which a request asks to run in an existing repository. */
export const REPOSITORY_PATH_KEY = "repositoryPath";

/** Decides whether a request may run in the repository path it names. */
export type RepositoryPolicy = (repositoryPath: string, request: Readonly<TaskSubmitRequest>) => boolean;

/** Inputs of {@link resolveWorkspace}. */
export interface WorkspaceOptions {
  /** The node's data directory. */
  dataDir: string;
  /** Without a policy, no request may pick its own directory. */
  allowRepository?: RepositoryPolicy;
}

/**
 * The working directory of a task: `<dataDir>/workspaces/<sessionId>` (or
 * `default` without a session), so tasks of one session share files and
 * sessions do not see each other's. A request whose `metadata.repositoryPath` is
 * an absolute path runs there instead, if the policy allows it.
 *
 * Throws INVALID_INPUT for a session id that could escape the workspaces
 * directory or a relative repository path, PERMISSION_DENIED when the policy
 * refuses the repository. Does not create the directory: the engine does.
 */
export function resolveWorkspace(request: Readonly<TaskSubmitRequest>, options: WorkspaceOptions): string {
  const repository = request.metadata?.[REPOSITORY_PATH_KEY];
  if (repository !== undefined) {
    if (typeof repository !== "string" || !isAbsolute(repository) || repository.includes("\0")) {
      throw new InvalidInputError("must be an absolute path", `metadata.${REPOSITORY_PATH_KEY}`);
    }
    const path = normalize(repository);
    if (options.allowRepository === undefined || !options.allowRepository(path, request)) {
      throw new CoderClawError("PERMISSION_DENIED", `metadata.${REPOSITORY_PATH_KEY}: policy does not allow running in ${path}`, {
        field: `metadata.${REPOSITORY_PATH_KEY}`,
      });
    }
    return path;
  }
  const session = request.sessionId ?? "default";
  if (!SESSION_ID.test(session) || session.includes("..")) {
    throw new InvalidInputError("must be 1-128 letters, digits, '.', '_' or '-', not starting with a dot and without '..'", "sessionId");
  }
  return join(options.dataDir, "workspaces", session);
}
