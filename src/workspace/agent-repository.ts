import { execFile } from "node:child_process";
import { join } from "node:path";
import { CoderClawError } from "../contract/errors.js";
import { git, isolatedGitEnv, SAFE_CONFIG } from "./git-changes.js";

/** The snapshot commit's time: the same tree makes the same commit id on every executor. */
const SNAPSHOT_DATE = "946684800 +0000";
/** Longest series of the agent's commits the node reads back, bytes. */
export const MAX_SERIES_BYTES = 256 * 1024 * 1024;
/** How long reading the series may take: the agent chose how much history there is. */
const SERIES_TIMEOUT_MS = 120_000;

/**
 * Makes a task's workspace a git repository (`<workspace>/.git`) whose one
 * commit holds the snapshot as materialised, so that its agent can commit its
 * work. Run by the node before the agent starts: nothing of the agent's is
 * read yet, the repository's config is git's own and {@link SAFE_CONFIG}'s,
 * and a `.gitattributes` of the submitter's tree can name no program (filter
 * and diff drivers are config). Answers the commit's id, the base of
 * {@link agentCommits}.
 */
export async function initAgentRepository(workTree: string, tree: string, signal?: AbortSignal): Promise<string> {
  const repo = { workTree, gitDir: join(workTree, ".git") };
  // Adding a large tree takes a while: a task cancelled meanwhile stops it.
  // Checked before each command too: a child spawned with a signal already aborted is killed only on the next tick, after it may have written.
  const run = (args: string[], env?: Record<string, string>): Promise<Buffer> => {
    signal?.throwIfAborted();
    return git(repo, args, { ...(env !== undefined && { env }), ...(signal !== undefined && { signal }) });
  };
  await run(["init", "-q"]);
  // Not `init -b`, which git before 2.28 lacks.
  await run(["symbolic-ref", "HEAD", "refs/heads/main"]);
  // The sandbox hides every global config: without a name of its own the agent's `git commit` would refuse.
  await run(["config", "user.name", "coderclaw agent"]);
  await run(["config", "user.email", "agent@coderclaw.invalid"]);
  await run(["add", "-A", "--force"]);
  await run(["commit", "-q", "--allow-empty", "--no-verify", "-m", `coderclaw: the submitted snapshot (tree ${tree})`], { GIT_AUTHOR_DATE: SNAPSHOT_DATE, GIT_COMMITTER_DATE: SNAPSHOT_DATE });
  return (await run(["rev-parse", "HEAD"])).toString("utf8").trim();
}

/** How a command runs as the agent's processes ran: inside its sandbox when it had one. */
export type AsTheAgent = (argv: [string, ...string[]]) => [string, ...string[]];

/**
 * The commits an agent made, as `git format-patch --pretty=mboxrd` writes them
 * (an mbox for `git am --patch-format=mboxrd`: a line of a message that reads
 * as the separator is escaped, so it neither splits the series nor counts as a
 * commit), and how many.
 */
export interface AgentCommits {
  series: Buffer;
  count: number;
}

/** The line `git format-patch` opens each message with. */
const MESSAGE_START = /^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$/gm;

/**
 * The commits made on top of `base` in the workspace's repository, oldest
 * first, binary-safe. The repository is the agent's by now (its config, its
 * objects, perhaps alternates pointing anywhere it could read), so git reads
 * it as the agent: `asTheAgent` puts the command in the agent's sandbox, where
 * it can read no more than the agent could. Its output is the agent's word:
 * the submitter checks it as it checks a patch before applying it.
 */
export async function agentCommits(workTree: string, base: string, asTheAgent: AsTheAgent): Promise<AgentCommits> {
  const [file, ...args] = asTheAgent(["git", ...SAFE_CONFIG, "format-patch", "--stdout", "--pretty=mboxrd", "--binary", "--full-index", "--no-signature", "-M", `${base}..HEAD`, "--"]);
  const env = isolatedGitEnv({ workTree, gitDir: join(workTree, ".git") });
  const series = await new Promise<Buffer>((resolve, reject) => {
    execFile(file, args, { cwd: workTree, encoding: "buffer", env, maxBuffer: MAX_SERIES_BYTES, timeout: SERIES_TIMEOUT_MS, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout);
      else reject(new CoderClawError("EXECUTION_FAILED", `the agent's commits could not be read from its repository (${workTree}/.git): ${String(stderr).trim().slice(0, 1000) || err.message}`));
    });
  });
  return { series, count: commitsIn(series) };
}

/** How many commits a series holds, by the line `git format-patch` opens each with. */
export function commitsIn(series: Uint8Array): number {
  return Buffer.from(series.buffer, series.byteOffset, series.byteLength).toString("latin1").match(MESSAGE_START)?.length ?? 0;
}
