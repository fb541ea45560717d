import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskEvent, TransportAdapter } from "../../src/contract/types.js";
import { workspaceResultOf, workspaceSpecOf, type WorkspaceResult } from "../../src/workspace/task-spec.js";
import type { CodeWorkspaces, ResultSources } from "./code-workspaces.js";
import type { ResultFile } from "./result-files.js";

/** What a task that carried code changed: its result record, its patch, the agent's commits (empty unless submitted with `commits`), and the artifacts it brought back. */
export interface TaskChanges {
  result: WorkspaceResult;
  patch: Buffer;
  /** The commits as `git format-patch --stdout --pretty=mboxrd` writes them, for `git am --patch-format=mboxrd`. */
  commits: Buffer;
  artifacts: Array<{ path: string; bytes: Buffer }>;
}

type TaskReads = Pick<TransportAdapter, "getTaskState"> & { getTaskEvents(taskId: string): Promise<TaskEvent[]> };

/**
 * The changes of a completed task that carried code, read from its completion
 * (wherever the task is kept) and fetched from a member that holds them (on a
 * member other than the submitter and the executor, with a grant the
 * submitter signed: `sources.grant`).
 */
export async function taskChanges(adapter: TaskReads, workspaces: CodeWorkspaces, taskId: string, signal?: AbortSignal, sources: Omit<ResultSources, "owner"> = {}): Promise<TaskChanges> {
  const { result, files, read } = await openTaskChanges(adapter, workspaces, taskId, signal, sources);
  const bytesOf = async (file: ResultFile): Promise<Buffer> => Buffer.concat(await Promise.all(file.chunks.map(read)));
  const bytesOfKind = async (kind: ResultFile["kind"]): Promise<Buffer> => {
    const file = files.find((f) => f.kind === kind);
    return file === undefined ? Buffer.alloc(0) : bytesOf(file);
  };
  const artifacts: TaskChanges["artifacts"] = [];
  for (const file of files) if (file.kind === "artifact") artifacts.push({ path: file.path, bytes: await bytesOf(file) });
  return { result, patch: await bytesOfKind("patch"), commits: await bytesOfKind("commits"), artifacts };
}

/**
 * The files of a completed task's changes, fetched as {@link taskChanges}
 * fetches them, without their bytes, and a reader of their blobs (each at
 * most 1 MiB, checked against its digest; a digest none of the files names is
 * refused): so that a result of any size can be sent on in pieces (over the
 * control socket, whose lines are bounded, or as an HTTP body).
 */
export async function openTaskChanges(adapter: TaskReads, workspaces: CodeWorkspaces, taskId: string, signal?: AbortSignal, sources: Omit<ResultSources, "owner"> = {}): Promise<OpenedChanges> {
  const { result, owner, patterns } = await completedResult(adapter, taskId);
  const files = await releasedAsSuch(taskId, result, workspaces, () => workspaces.resultFiles(result, { taskId, artifacts: patterns }, signal, { ...sources, owner }));
  const named = new Set(files.flatMap((f) => f.chunks));
  return { result, files, read: (digest) => releasedAsSuch(taskId, result, workspaces, () => workspaces.resultBlob(result, named, digest)) };
}

/** See {@link openTaskChanges}. */
export interface OpenedChanges {
  result: WorkspaceResult;
  files: ResultFile[];
  read(digest: string): Promise<Uint8Array>;
}

/** What `read` answers; a result held here and gone is said to be released (by `task clean` or after the retention), not lost. */
async function releasedAsSuch<T>(taskId: string, result: WorkspaceResult, workspaces: CodeWorkspaces, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof CoderClawError && err.code === "NOT_FOUND" && result.heldBy === workspaces.selfId) {
      throw new CoderClawError("NOT_FOUND", `task ${taskId}'s result is no longer kept on this node (released by \`coderclaw task clean\`, or older than the result retention)`, { cause: err });
    }
    throw err;
  }
}

/**
 * A grant, signed here, letting `grantee` fetch the result of task `taskId`
 * from any member that holds it until `expires` (Unix ms). Only the task's
 * submitter can make one that holders honour.
 */
export async function grantTaskResult(adapter: TaskReads, workspaces: CodeWorkspaces, taskId: string, grantee: string, expires: number): Promise<{ tree: string; grant: Uint8Array }> {
  const { result, owner } = await completedResult(adapter, taskId);
  if (owner !== workspaces.selfId) throw new CoderClawError("PERMISSION_DENIED", `task ${taskId} was submitted by ${owner}: only its submitter can grant its result`);
  return { tree: result.tree, grant: workspaces.grant(result.tree, grantee, expires) };
}

/** The result a completed task's completion names, its submitter (the device whose grants count for it), and the artifact patterns it was submitted with. */
async function completedResult(adapter: TaskReads, taskId: string): Promise<{ result: WorkspaceResult; owner: string; patterns: readonly string[] }> {
  const state = await adapter.getTaskState(taskId);
  if (state === null) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
  if (state.status !== "completed") throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} is ${state.status}: only a completed task has changes to show`);
  const events = await adapter.getTaskEvents(taskId);
  const done = events.findLast((e) => e.type === "status_changed" && e.status === "completed");
  const result = workspaceResultOf(done?.data);
  if (result === undefined) throw new CoderClawError("NOT_FOUND", `task ${taskId} did not carry code (submit it with --repo): it has no changes`);
  // An attempt names the member that sent it; a task placed by the node that took it is kept (written) by that node, its submitter.
  return { result, owner: state.submittedBy ?? state.executorId ?? result.heldBy, patterns: workspaceSpecOf(state.metadata)?.artifacts ?? [] };
}
