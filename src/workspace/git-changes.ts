import { execFile, spawn } from "node:child_process";
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, writeFileSync, type Stats } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setImmediate } from "node:timers/promises";
import { CoderClawError } from "../contract/errors.js";
import { blobDigest, CHUNK_SIZE, type Manifest, type ManifestEntry } from "./manifest.js";
import { stampOf, type FileStamp, type MaterializedTree } from "./materialize.js";

/**
 * Git run on a task's workspace by the node, outside any sandbox: its metadata
 * lives apart from the workspace (the agent cannot plant hooks, an fsmonitor
 * command or a config there), and no user or system configuration is read.
 */
export const SAFE_CONFIG = [
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
/** Entries stat'ed between two turns of the event loop. */
const WALK_BATCH = 512;

/** A workspace as it was materialised, the base its changes are taken against. */
export interface ChangeTracking {
  readonly workTree: string;
  /** A directory outside the work tree, for git's scratch repository. */
  readonly gitDir: string;
  readonly manifest: Manifest;
  /** Each entry's stat as written. */
  readonly stamps: ReadonlyMap<string, FileStamp>;
  /**
   * The file system's clock (an mtime) once the tree was written: a file
   * stamped at or after it could be changed within the same clock tick and
   * keep its stamp, so its content is compared instead.
   */
  readonly settledMs: number;
}

/** The environment of git run as {@link SAFE_CONFIG} says: on this work tree and git directory, no user or system configuration, messages untranslated. */
export function isolatedGitEnv(tracking: { workTree: string; gitDir: string }): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    GIT_DIR: tracking.gitDir,
    GIT_WORK_TREE: tracking.workTree,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    LC_ALL: "C",
  };
}

/** Runs git as {@link SAFE_CONFIG} says; `okCodes` are exit codes that are answers, not failures. */
export function git(tracking: { workTree: string; gitDir: string }, args: string[], options: { input?: Buffer; maxBuffer?: number; okCodes?: number[]; env?: Readonly<Record<string, string>>; signal?: AbortSignal } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      [...SAFE_CONFIG, ...args],
      { cwd: tracking.workTree, encoding: "buffer", maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024, env: { ...isolatedGitEnv(tracking), ...options.env }, ...(options.signal !== undefined && { signal: options.signal }) },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (err && !(typeof code === "number" && options.okCodes?.includes(code))) reject(new CoderClawError("EXECUTION_FAILED", `git ${args[0]} in ${tracking.workTree}: ${String(stderr).trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(options.input);
  });
}

/**
 * Takes `tree`, just materialised in `workTree`, as the base its changes are
 * taken against. Nothing is read or copied: the manifest holds the base's
 * contents, the stamps tell which files the agent touched.
 */
export async function trackWorkspace(workTree: string, gitDir: string, manifest: Manifest, tree: MaterializedTree): Promise<ChangeTracking> {
  await mkdir(gitDir, { recursive: true, mode: 0o700 });
  // Written after the last file of the tree, so its mtime is the file system's clock at that point.
  const marker = join(gitDir, "settled");
  writeFileSync(marker, "");
  return { workTree, gitDir, manifest, stamps: tree.stamps, settledMs: lstatSync(marker).mtimeMs };
}

/** What changed in a tracked workspace since its base. */
export interface WorkspaceChanges {
  /** Git's binary-safe patch (new, deleted and renamed files, mode changes), empty when nothing changed. */
  patch: Buffer;
  added: number;
  modified: number;
  deleted: number;
}

interface Seen {
  readonly stat: Stats;
  readonly link: boolean;
}

/** Every regular file and symlink under `root` by relative path; `.git` directories (the agent's own repositories' metadata) are not entered. */
async function walk(root: string): Promise<Map<string, Seen>> {
  const found = new Map<string, Seen>();
  const pending = [""];
  let since = 0;
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let names: string[];
    try {
      names = readdirSync(dir === "" ? root : `${root}/${dir}`);
    } catch {
      continue;
    }
    for (const name of names) {
      if (++since >= WALK_BATCH) {
        since = 0;
        await setImmediate();
      }
      if (name.toLowerCase() === ".git") continue;
      const path = dir === "" ? name : `${dir}/${name}`;
      const stat = lstatSync(`${root}/${path}`, { throwIfNoEntry: false });
      if (stat === undefined) continue;
      if (stat.isDirectory()) pending.push(path);
      else if (stat.isFile() || stat.isSymbolicLink()) found.set(path, { stat, link: stat.isSymbolicLink() });
    }
  }
  return found;
}

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mode === b.mode && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** The first `size` bytes of the open file `fd`, in pieces of at most a chunk. */
function* fileChunks(fd: number, size: number, path: string): Generator<Buffer> {
  for (let at = 0; at < size; ) {
    const piece = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, size - at));
    const n = readSync(fd, piece, 0, piece.byteLength, at);
    if (n === 0) throw new CoderClawError("EXECUTION_FAILED", `${path} shrank while its changes were read`);
    at += n;
    yield n === piece.byteLength ? piece : piece.subarray(0, n);
  }
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The open regular file at `path` (never a link, fifo or device someone put there since it was listed), or undefined. */
function openRegular(path: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch {
    return undefined;
  }
  if (fstatSync(fd).isFile()) return fd;
  closeSync(fd);
  return undefined;
}

/** Whether the file or link at `path` still holds what `entry` says. */
function holdsBase(path: string, seen: Seen, entry: ManifestEntry): boolean {
  if (entry.kind === "symlink") return seen.link && readlinkSync(path) === entry.target;
  if (seen.link || seen.stat.size !== entry.size || ((seen.stat.mode & 0o100) !== 0) !== entry.executable) return false;
  const fd = openRegular(path);
  if (fd === undefined) return false;
  try {
    let i = 0;
    for (const piece of fileChunks(fd, entry.size, path)) if (blobDigest(piece) !== entry.chunks[i++]) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

/** A path as fast-import reads it: C-style quoted. */
function quote(path: string): string {
  return `"${path.replace(/[\\"\u0000-\u001f\u007f]/g, (c) => (c === "\\" || c === '"' ? `\\${c}` : `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`))}"`;
}

/**
 * The changes since the base, committed by the agent or not. Only the paths
 * whose stat differs from the stamp taken when they were written (or that
 * are new or gone) are read; git diffs two commits of a scratch repository
 * that hold just those paths, before and after. Files the base held are
 * followed whatever ignore rules say; new files that the workspace's own
 * ignore rules exclude (build output, installed dependencies) are left out.
 */
export async function collectChanges(tracking: ChangeTracking, readBlob: (digest: string) => Promise<Uint8Array>): Promise<WorkspaceChanges> {
  const { workTree, manifest, stamps, settledMs } = tracking;
  const now = await walk(workTree);
  const before: ManifestEntry[] = [];
  const after: string[] = [];
  const added: string[] = [];
  for (const entry of manifest.entries) {
    const seen = now.get(entry.path);
    if (seen === undefined) {
      before.push(entry);
      continue;
    }
    now.delete(entry.path);
    const stamp = stamps.get(entry.path);
    const current = stampOf(seen.stat);
    if (stamp !== undefined && sameStamp(stamp, current)) {
      const racy = stamp.mtimeMs >= settledMs || stamp.ctimeMs >= settledMs;
      if (!racy || holdsBase(`${workTree}/${entry.path}`, seen, entry)) continue;
    }
    before.push(entry);
    after.push(entry.path);
  }
  for (const path of now.keys()) added.push(path);
  if (before.length === 0 && added.length === 0) return { patch: Buffer.alloc(0), added: 0, modified: 0, deleted: 0 };

  await git(tracking, ["init", "-q"]);
  if (added.length > 0) {
    const input = Buffer.from(added.join("\0") + "\0", "utf8");
    const ignored = new Set((await git(tracking, ["check-ignore", "--no-index", "--stdin", "-z"], { input, okCodes: [1] })).toString("utf8").split("\0"));
    for (const path of added) if (!ignored.has(path)) after.push(path);
  }
  if (before.length === 0 && after.length === 0) return { patch: Buffer.alloc(0), added: 0, modified: 0, deleted: 0 };
  await importCommits(tracking, before, after, readBlob);

  const status = (await git(tracking, ["diff", "--name-status", "-z", "-M", "base", "after"])).toString("utf8").split("\0");
  let addedCount = 0;
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
    if (code === "A") addedCount++;
    else if (code === "D") deleted++;
    else modified++;
    i += 1;
  }
  const patch = await git(tracking, ["diff", "--binary", "--full-index", "-M", "base", "after"], { maxBuffer: MAX_PATCH_BYTES });
  return { patch, added: addedCount, modified, deleted };
}

const COMMITTER = "committer coderclaw <coderclaw@localhost> 946684800 +0000\n";

/**
 * Two commits through one `git fast-import`: `base` with the base contents of
 * the paths in `before`, `after` with the work tree's contents of the paths
 * in `after`.
 */
async function importCommits(tracking: ChangeTracking, before: readonly ManifestEntry[], after: readonly string[], readBlob: (digest: string) => Promise<Uint8Array>): Promise<void> {
  const child = spawn("git", [...SAFE_CONFIG, "fast-import", "--quiet", "--done"], { cwd: tracking.workTree, env: isolatedGitEnv(tracking), stdio: ["pipe", "ignore", "pipe"] });
  const stderr: Buffer[] = [];
  child.stderr.on("data", (b: Buffer) => stderr.push(b));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  let broken: Error | undefined;
  child.stdin.on("error", (err) => (broken ??= err));
  const write = async (bytes: Uint8Array | string): Promise<void> => {
    if (broken !== undefined) throw broken;
    if (!child.stdin.write(bytes)) await new Promise<void>((resolve) => child.stdin.once("drain", resolve));
  };
  let failed: unknown;
  try {
    await write(`commit refs/heads/base\n${COMMITTER}data 0\n`);
    for (const entry of before) {
      if (entry.kind === "symlink") {
        const target = Buffer.from(entry.target, "utf8");
        await write(`M 120000 inline ${quote(entry.path)}\ndata ${target.byteLength}\n`);
        await write(target);
      } else {
        await write(`M ${entry.executable ? "100755" : "100644"} inline ${quote(entry.path)}\ndata ${entry.size}\n`);
        for (const digest of entry.chunks) await write(await readBlob(digest));
      }
      await write("\n");
    }
    await write(`commit refs/heads/after\n${COMMITTER}data 0\nfrom refs/heads/base\ndeleteall\n`);
    for (const path of after) {
      const full = `${tracking.workTree}/${path}`;
      const stat = lstatSync(full, { throwIfNoEntry: false });
      if (stat === undefined) continue;
      if (stat.isSymbolicLink()) {
        const target = readlinkSync(full, { encoding: "buffer" });
        await write(`M 120000 inline ${quote(path)}\ndata ${target.byteLength}\n`);
        await write(target);
      } else if (stat.isFile()) {
        const fd = openRegular(full);
        if (fd === undefined) continue;
        try {
          const size = fstatSync(fd).size;
          await write(`M ${(stat.mode & 0o100) !== 0 ? "100755" : "100644"} inline ${quote(path)}\ndata ${size}\n`);
          for (const piece of fileChunks(fd, size, path)) await write(piece);
        } finally {
          closeSync(fd);
        }
      } else continue;
      await write("\n");
    }
    await write("done\n");
  } catch (err) {
    failed = err;
  } finally {
    child.stdin.end();
  }
  const code = await exited.catch((err: unknown) => {
    failed ??= err;
    return -1;
  });
  if (code !== 0 || failed !== undefined || broken !== undefined) {
    const why = Buffer.concat(stderr).toString("utf8").trim() || (failed instanceof Error ? failed.message : undefined) || broken?.message || `exit ${code}`;
    throw new CoderClawError("EXECUTION_FAILED", `git fast-import in ${tracking.workTree}: ${why}`);
  }
}
