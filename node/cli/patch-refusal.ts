import { execFile } from "node:child_process";
import { patchPaths } from "../../src/workspace/patch-paths.js";

function git(cwd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile("git", args, { cwd, env: { ...process.env, LC_ALL: "C" }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1;
      done({ code, stdout, stderr: stderr.trim() });
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input);
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
 * Why a task's result patch must not be applied to the tree at `place` (its
 * paths are relative to that tree: the directory the task was snapshotted
 * from), or undefined. The patch is the executor's (another member's) bytes,
 * and a result never does what is refused here, which `git apply` would do:
 * copy a file (git reads a copy's source wherever it points, `../` or an
 * absolute path or `.git/config`, into the tree, where the next snapshot sends
 * it away), or read or write a path the tree ignores (the snapshot sent no
 * ignored file and the executor leaves new ones out: such a patch renames a
 * `.env` to where a snapshot takes it, or edits `node_modules`, where git
 * shows no change). Outside a git work tree only the first is checked.
 */
export async function patchRefusal(place: WorkTreePlace | undefined, patch: Uint8Array): Promise<string | undefined> {
  const { paths, copies } = patchPaths(patch);
  if (copies.length > 0) return `it copies "${copies[0]!.slice(0, 200)}" (copy from): a task's result never copies a file, and git apply reads a copy's source wherever it is`;
  if (place === undefined || paths.length === 0) return undefined;
  const ignored = await git(place.top, ["check-ignore", "--stdin", "-z"], paths.map((p) => place.prefix + p).join("\0") + "\0");
  if (ignored.code === 1) return undefined;
  if (ignored.code === 0) return `it changes "${ignored.stdout.split("\0")[0]!.slice(0, 200)}", which this tree ignores: a task's result never does (its snapshot held no ignored file)`;
  return `git could not tell which of its paths this tree ignores: ${ignored.stderr.slice(0, 500)}`;
}
