import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { CoderClawError } from "../contract/errors.js";

/**
 * Git run on a task's workspace by the node, outside any sandbox: its metadata
 * lives apart from the workspace (the agent cannot plant hooks, an fsmonitor
 * command or a config there), and no user or system configuration is read.
 */
const SAFE_CONFIG = [
  "-c", "core.hooksPath=/dev/null",
  "-c", "core.fsmonitor=false",
  "-c", "core.autocrlf=false",
  "-c", "core.symlinks=true",
  "-c", "core.fileMode=true",
  "-c", "core.quotePath=false",
  "-c", "commit.gpgSign=false",
  "-c", "user.name=coderclaw",
  "-c", "user.email=coderclaw@localhost",
];

/** Longest patch the node reads back from git, bytes. */
const MAX_PATCH_BYTES = 1024 * 1024 * 1024;

/** Where a workspace's changes are tracked: its own git directory, beside it. */
export interface ChangeTracking {
  readonly workTree: string;
  readonly gitDir: string;
  /** The commit holding the workspace as it was materialised. */
  readonly base: string;
}

function git(tracking: { workTree: string; gitDir: string }, args: string[], maxBuffer = 64 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      "git",
      [...SAFE_CONFIG, ...args],
      {
        cwd: tracking.workTree,
        encoding: "buffer",
        maxBuffer,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          GIT_DIR: tracking.gitDir,
          GIT_WORK_TREE: tracking.workTree,
          GIT_CONFIG_NOSYSTEM: "1",
          GIT_CONFIG_GLOBAL: "/dev/null",
          GIT_AUTHOR_DATE: "2000-01-01T00:00:00Z",
          GIT_COMMITTER_DATE: "2000-01-01T00:00:00Z",
          LC_ALL: "C",
        },
      },
      (err, stdout, stderr) => {
        if (err) reject(new CoderClawError("EXECUTION_FAILED", `git ${args[0]} in ${tracking.workTree}: ${String(stderr).trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/** Record the workspace as it is now (every file, ignore rules or not) as the base its changes are taken against. */
export async function trackWorkspace(workTree: string, gitDir: string): Promise<ChangeTracking> {
  const t = { workTree, gitDir };
  await mkdir(gitDir, { recursive: true, mode: 0o700 });
  await git(t, ["init", "-q"]);
  await git(t, ["add", "-A", "--force"]);
  await git(t, ["commit", "-q", "--allow-empty", "--no-verify", "-m", "workspace as sent"]);
  const base = (await git(t, ["rev-parse", "HEAD"])).toString("utf8").trim();
  return { workTree, gitDir, base };
}

/** What changed in a tracked workspace since its base. */
export interface WorkspaceChanges {
  /** Git's binary-safe patch (new, deleted and renamed files, mode changes), empty when nothing changed. */
  patch: Buffer;
  added: number;
  modified: number;
  deleted: number;
}

/**
 * The changes since the base, committed by the agent or not. Files the base
 * held are followed whatever ignore rules say; new files that the workspace's
 * own ignore rules exclude (build output, installed dependencies) are left out.
 */
export async function collectChanges(tracking: ChangeTracking): Promise<WorkspaceChanges> {
  await git(tracking, ["add", "-A"]);
  const status = (await git(tracking, ["diff", "--cached", "--name-status", "-z", "-M", tracking.base])).toString("utf8").split("\0");
  let added = 0;
  let modified = 0;
  let deleted = 0;
  for (let i = 0; i < status.length; i++) {
    const code = status[i]!;
    if (code === "") continue;
    if (code.startsWith("R") || code.startsWith("C")) {
      modified++;
      i += 2;
      continue;
    }
    if (code === "A") added++;
    else if (code === "D") deleted++;
    else modified++;
    i += 1;
  }
  const patch = await git(tracking, ["diff", "--cached", "--binary", "--full-index", "-M", tracking.base], MAX_PATCH_BYTES);
  return { patch, added, modified, deleted };
}
