import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { patchPaths } from "../../src/workspace/patch-paths.js";
import { firstIgnoredPath, gitEnv, IGNORE_FILE } from "../../src/workspace/tree-listing.js";

interface GitRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** git in the tree asked for (`gitEnv`: not one a GIT_DIR or GIT_INDEX_FILE of the caller's environment points at), its messages untranslated. */
function git(cwd: string, args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<GitRun> {
  return new Promise((done) => {
    const child = execFile("git", args, { cwd, env: { ...gitEnv(), ...options.env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1;
      done({ code, stdout, stderr: stderr.trim() });
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(options.input);
  });
}

/** Where a tree is in its git work tree: the top level, and the tree's path from there (empty, or ending with `/`). */
export interface WorkTreePlace {
  top: string;
  prefix: string;
}

/** The git work tree `dir` is in, and where; undefined when it is in none. */
export async function workTreePlace(dir: string): Promise<WorkTreePlace | undefined> {
  const r = await git(dir, ["rev-parse", "--show-toplevel", "--show-prefix"]);
  if (r.code !== 0) return undefined;
  const [top, prefix] = r.stdout.split("\n");
  return top === undefined || top === "" ? undefined : { top, prefix: prefix ?? "" };
}

/**
 * Why a task's result patch must not be applied to `tree` (its paths are
 * relative to it: the directory the task was snapshotted from; `place`, where
 * it is in its git work tree, if it is in one), or undefined. The patch is the executor's (another member's) bytes,
 * and a result never does what is refused here, which `git apply` would do:
 * copy a file (git reads a copy's source wherever it points, `../` or an
 * absolute path or `.git/config`, into the tree, where the next snapshot sends
 * it away), or read or write a path the tree ignores (the snapshot sent no
 * ignored file and the executor leaves new ones out: such a patch renames a
 * `.env` to where a snapshot takes it, or edits `node_modules`, where git
 * shows no change). Outside a git work tree, what its {@link IGNORE_FILE}s
 * leave out is refused the same way.
 */
export async function patchRefusal(tree: string, place: WorkTreePlace | undefined, patch: Uint8Array): Promise<string | undefined> {
  const { paths, copies } = patchPaths(patch);
  if (copies.length > 0) return `it copies "${copies[0]!.slice(0, 200)}" (copy from): a task's result never copies a file, and git apply reads a copy's source wherever it is`;
  if (paths.length === 0) return undefined;
  if (place === undefined) {
    const ignored = await firstIgnoredPath(tree, paths);
    return ignored === undefined ? undefined : `it changes "${ignored.slice(0, 200)}", which this tree's ${IGNORE_FILE} leaves out: a task's result never does (its snapshot held no such file)`;
  }
  return ignoredRefusal(place, paths.map((p) => place.prefix + p));
}

/** Why a result must not change `paths` (from the work tree's top), one of which the tree ignores, or undefined. */
async function ignoredRefusal(place: WorkTreePlace, paths: readonly string[]): Promise<string | undefined> {
  if (paths.length === 0) return undefined;
  const ignored = await git(place.top, ["check-ignore", "--stdin", "-z"], { input: paths.join("\0") + "\0" });
  if (ignored.code === 1) return undefined;
  if (ignored.code === 0) return `it changes "${ignored.stdout.split("\0")[0]!.slice(0, 200)}", which this tree ignores: a task's result never does (its snapshot held no ignored file)`;
  return `git could not tell which of its paths this tree ignores: ${ignored.stderr.slice(0, 500)}`;
}

/** What {@link applyResultPatch} did: applied (or, checking only, would apply) cleanly; or why nothing was changed, or what failed. */
export type PatchOutcome =
  | { ok: true; applied: boolean }
  | {
      ok: false;
      /** `unsafe`: refused before git ran ({@link patchRefusal}); `does-not-apply`, `conflicts`: found by git before anything changed; `failed`: git's apply itself failed. */
      why: "unsafe" | "does-not-apply" | "conflicts" | "failed";
      message: string;
    };

/**
 * Applies a task's result patch to the tree at `target`, the directory the
 * task was submitted with (`--repo`): all of it or, on any refusal, nothing.
 * The patch is refused first when it does what no result does
 * ({@link patchRefusal}); then checked whole by `git apply --check`; with
 * `threeWay`, merged first on a copy of the index, so that a merge that would
 * conflict changes nothing either (`--check --3way` passes it). Below its
 * work tree's top the tree's paths are placed under its directory: git apply,
 * run there, skips every path outside the directory it runs in without a
 * word. With `check`, stops before applying.
 */
export async function applyResultPatch(target: string, patch: Uint8Array, options: { check?: boolean; threeWay?: boolean } = {}): Promise<PatchOutcome> {
  const tree = resolve(target);
  const place = await workTreePlace(tree);
  const refused = await patchRefusal(tree, place, patch);
  if (refused !== undefined) return { ok: false, why: "unsafe", message: refused };
  const cwd = place?.top ?? tree;
  const dir = mkdtempSync(join(tmpdir(), "coderclaw-apply-"));
  try {
    const file = join(dir, "changes.patch");
    writeFileSync(file, patch);
    const how = [...(place !== undefined && place.prefix !== "" ? [`--directory=${place.prefix}`] : []), ...(options.threeWay === true ? ["--3way"] : [])];
    const message = (r: GitRun): string => `${r.stdout}${r.stderr}`.trim();
    const check = await git(cwd, ["apply", "--check", ...how, file]);
    if (check.code !== 0) return { ok: false, why: "does-not-apply", message: message(check) };
    if (options.threeWay === true) {
      // A three-way apply works on the index and needs the tree to match it for every path it touches: a copy of the index answers for the tree.
      const index = join(dir, "index");
      const indexPath = await git(cwd, ["rev-parse", "--path-format=absolute", "--git-path", "index"]);
      if (indexPath.code !== 0) return { ok: false, why: "does-not-apply", message: message(indexPath) };
      // A repository with nothing staged yet has no index file: git reads a missing one as empty.
      if (existsSync(indexPath.stdout.trim())) copyFileSync(indexPath.stdout.trim(), index);
      const merged = await git(cwd, ["apply", "--cached", ...how, file], { env: { GIT_INDEX_FILE: index } });
      if (merged.code !== 0) return { ok: false, why: "conflicts", message: message(merged) };
    }
    if (options.check === true) return { ok: true, applied: false };
    const applied = await git(cwd, ["apply", ...how, file]);
    return applied.code === 0 ? { ok: true, applied: true } : { ok: false, why: "failed", message: message(applied) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How {@link applyResultCommits} names the directory of its worktree, before its process id. */
const WORKTREE_PREFIX = "coderclaw-commits-";

/**
 * Removes the worktrees {@link applyResultCommits} left registered in the
 * repository at `top` when its process was killed (SIGKILL, or Ctrl-C, which
 * ends the CLI without its cleanup): git prunes a worktree only once its
 * directory is gone, and a directory under the temporary directory stays,
 * a checkout of the repository each. The directory's name holds the process
 * id: a worktree of a process still running (another apply) is left alone.
 */
async function removeAbandonedWorktrees(top: string): Promise<void> {
  const listed = await git(top, ["worktree", "list", "--porcelain"]);
  if (listed.code !== 0) return;
  // git names a worktree by its real path.
  const temporary = new Set([tmpdir(), realpathSync(tmpdir())]);
  for (const line of listed.stdout.split("\n")) {
    if (!line.startsWith("worktree ")) continue;
    const path = line.slice("worktree ".length);
    const dir = dirname(path);
    const pid = new RegExp(`^${WORKTREE_PREFIX}(\\d+)-[^/]+$`).exec(basename(dir))?.[1];
    if (pid === undefined || basename(path) !== "worktree" || !temporary.has(dirname(dir)) || runs(Number(pid))) continue;
    // Twice: one killed inside git worktree add is still locked by it.
    await git(top, ["worktree", "remove", "--force", "--force", path]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether a process `pid` runs (one of another user's answers EPERM). */
function runs(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Makes the agent's commits (`series`, as `git format-patch` wrote them on
 * the executor) commits of the repository at `target`, on top of its HEAD:
 * all of them or, on any refusal, nothing. The series is refused first as a
 * patch is ({@link patchRefusal}: it is the executor's bytes); then `git am`
 * replays it in a worktree of its own, detached at HEAD, so that a series
 * that stops halfway changes nothing here, and the paths its commits hold
 * are refused as a patch's are; then the branch moves forward to
 * the result only where the tree's own changes allow (`git merge
 * --ff-only`, which refuses rather than overwrite them). With `check`,
 * stops before moving. Answers how many commits came (or would come).
 */
export async function applyResultCommits(target: string, series: Uint8Array, options: { check?: boolean; threeWay?: boolean } = {}): Promise<PatchOutcome & { commits?: number }> {
  const tree = resolve(target);
  const place = await workTreePlace(tree);
  if (place === undefined) return { ok: false, why: "does-not-apply", message: `${tree} is in no git repository: commits go onto a branch (apply the patch instead, without --commits)` };
  const refused = await patchRefusal(tree, place, series);
  if (refused !== undefined) return { ok: false, why: "unsafe", message: refused };
  const message = (r: GitRun): string => `${r.stdout}${r.stderr}`.trim();
  const headAt = await git(place.top, ["rev-parse", "--verify", "-q", "HEAD"]);
  if (headAt.code !== 0) return { ok: false, why: "does-not-apply", message: `${place.top} has no commit yet to put the task's commits on` };
  const head = headAt.stdout.trim();
  await removeAbandonedWorktrees(place.top);
  const dir = mkdtempSync(join(tmpdir(), `${WORKTREE_PREFIX}${process.pid}-`));
  const worktree = join(dir, "worktree");
  try {
    const file = join(dir, "commits.mbox");
    writeFileSync(file, series);
    const added = await git(place.top, ["worktree", "add", "--detach", "-q", worktree, head]);
    if (added.code !== 0) return { ok: false, why: "failed", message: message(added) };
    const how = [...(place.prefix !== "" ? [`--directory=${place.prefix}`] : []), ...(options.threeWay === true ? ["--3way"] : [])];
    // Not the format git am would guess: a file opening as a StGit series names other files, anywhere on this machine, for it to apply.
    // mboxrd, as the executor writes it: a message's line that reads as the separator comes escaped.
    const am = await git(worktree, ["am", "-q", "--keep-cr", "--patch-format=mboxrd", ...how, file]);
    if (am.code !== 0) return { ok: false, why: options.threeWay === true ? "conflicts" : "does-not-apply", message: message(am) };
    const tip = (await git(worktree, ["rev-parse", "HEAD"])).stdout.trim();
    // git am decodes what the check above read as it stood (a base64 or quoted-printable body, a format=flowed one): the paths its commits hold are what it applied.
    // Plumbing, which no log.* setting of the user's adds lines to (log.showSignature prints gpg's word among the paths).
    const replayed = await git(worktree, ["rev-list", `${head}..${tip}`]);
    const touched = replayed.code !== 0 ? replayed : await git(worktree, ["diff-tree", "--stdin", "-r", "--no-commit-id", "--name-only", "--no-renames", "-z"], { input: replayed.stdout });
    if (touched.code !== 0) return { ok: false, why: "failed", message: message(touched) };
    const committed = await ignoredRefusal(place, touched.stdout.split("\0").filter((p) => p !== ""));
    if (committed !== undefined) return { ok: false, why: "unsafe", message: committed };
    const count = replayed.stdout.split("\n").filter((line) => line !== "").length;
    if (options.check === true) return { ok: true, applied: false, commits: count };
    const moved = await git(place.top, ["merge", "--ff-only", "-q", tip]);
    return moved.code === 0 ? { ok: true, applied: true, commits: count } : { ok: false, why: "conflicts", message: message(moved) };
  } finally {
    await git(place.top, ["worktree", "remove", "--force", worktree]);
    rmSync(dir, { recursive: true, force: true });
    await git(place.top, ["worktree", "prune"]);
  }
}
