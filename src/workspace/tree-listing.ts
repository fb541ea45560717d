import { isUtf8 } from "node:buffer";
import { execFile } from "node:child_process";
import { lstat, readdir, readFile, realpath } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import ignoreModule from "ignore";
import { InvalidInputError } from "../contract/errors.js";

const run = promisify(execFile);
// The package is CommonJS typed with an ES default export: under NodeNext the
// factory is that `default` (which the package also sets at run time).
const ignore = ignoreModule.default;

/** The name of the ignore file honoured outside git repositories (gitignore syntax). */
export const IGNORE_FILE = ".coderclawignore";

/** A path left out of a snapshot on purpose, and why. */
export interface SkippedPath {
  readonly path: string;
  readonly reason: string;
}

/** The candidate paths of a tree, relative to its root, POSIX-separated. */
export interface TreeListing {
  readonly paths: string[];
  /** Paths that could not be taken at all (such as names that are not UTF-8). */
  readonly skipped: SkippedPath[];
  /** The commit the working tree sits on, when the root is a git repository's top level with a commit. */
  readonly base: { commit: string } | undefined;
  /**
   * Tracked regular files that git found unchanged against its index (the
   * index's stat check, racily clean entries compared by content), by path:
   * their content is the blob the index names, which git's object store
   * keeps. Only in a git work tree.
   */
  readonly clean?: ReadonlyMap<string, IndexedFile>;
}

/**
 * What git printed for a directory's last listing and what was read from it:
 * the same bytes next time are the same listing, not parsed again.
 */
export interface KeptListing {
  listing: { readonly raw: Buffer; readonly changed: Buffer | undefined; readonly parsed: Omit<TreeListing, "base"> } | undefined;
}

/** A file as git's index holds it. */
export interface IndexedFile {
  /** The git blob id of its content. */
  readonly oid: string;
  readonly executable: boolean;
}

/**
 * The environment git runs in here: the listing must describe the directory
 * asked for, not whatever repository a hook or a wrapper pointed git at
 * through its environment; and git's messages must be the untranslated ones
 * this module recognises.
 */
export function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C" };
  for (const name of ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR", "GIT_PREFIX", "GIT_NAMESPACE"]) delete env[name];
  return env;
}

async function git(dir: string, args: string[]): Promise<Buffer> {
  const { stdout } = await run("git", args, { cwd: dir, env: gitEnv(), encoding: "buffer", maxBuffer: 1024 ** 3 });
  return stdout;
}

/**
 * Lists a directory's tree: in a git work tree, what `git ls-files` reports
 * as tracked or untracked-and-not-ignored under it (so deleted tracked files
 * drop out when they are stat'ed); elsewhere, every path not excluded by the
 * {@link IGNORE_FILE}s of the tree, read as git reads nested `.gitignore`
 * files. `.git` is never descended into. A plain walk
 * that finds more than `maxPaths` files stops and is refused. In a work tree
 * the files are also checked against git's index ({@link TreeListing.clean}).
 */
export async function listTree(dir: string, maxPaths = Number.POSITIVE_INFINITY, kept?: KeptListing): Promise<TreeListing> {
  const root = await realpath(dir);
  // All asked at once: most snapshots are of repositories, and each git
  // start costs more than the answer. Outside one, the listing fails and is dropped.
  // Modes, ctimes and every stat field are compared whatever the repository says (core.fileMode, core.trustctime,
  // core.checkStat=minimal would let a rewritten file pass as clean), so an index entry is clean only as a full stat shows;
  // and no fsmonitor hook stands in for the stats (one that misses a change would hand the old blob to the snapshot).
  const [repo, listed, changed] = await Promise.allSettled([
    repository(root),
    git(root, ["ls-files", "-z", "-v", "-s", "--cached", "--others", "--exclude-standard"]),
    // --relative: paths from `root` and only under it, as ls-files names them.
    git(root, ["-c", "core.fileMode=true", "-c", "core.symlinks=true", "-c", "core.trustctime=true", "-c", "core.checkStat=default", "-c", "core.fsmonitor=false", "diff-files", "-z", "--name-only", "--relative"]),
  ]);
  if (repo.status === "rejected") throw repo.reason;
  if (repo.value === undefined) return listPlainTree(root, maxPaths);
  if (listed.status === "rejected") throw listed.reason;
  const top = repo.value.top === root;
  const base = top && repo.value.commit !== undefined ? { commit: repo.value.commit } : undefined;
  const changedRaw = changed.status === "fulfilled" ? changed.value : undefined;
  const last = kept?.listing;
  if (last !== undefined && last.raw.equals(listed.value) && (last.changed === undefined ? changedRaw === undefined : changedRaw?.equals(last.changed) === true)) return { ...last.parsed, base };
  const parsed = listGitTree(listed.value, changedRaw);
  if (kept !== undefined) kept.listing = { raw: listed.value, changed: changedRaw, parsed };
  return { ...parsed, base };
}

/** The top level of the work tree `dir` is in, and its HEAD commit if it has one; undefined outside a work tree. */
async function repository(dir: string): Promise<{ top: string; commit: string | undefined } | undefined> {
  let out: string[];
  try {
    out = (await git(dir, ["rev-parse", "--is-inside-work-tree", "--show-toplevel", "--verify", "--quiet", "HEAD^{commit}"])).toString("utf8").split("\n");
  } catch (err) {
    // A repository git refuses to read (another user's) must not be taken as a
    // plain directory: that would send its ignored files, node_modules and all.
    const stderr = String((err as { stderr?: unknown }).stderr ?? "");
    if (stderr.includes("dubious ownership")) {
      throw new InvalidInputError(`git refuses to read the repository (it belongs to another user; see git's safe.directory)`, dir);
    }
    // A repository without a commit yet: git printed the rest before it failed to find HEAD.
    out = String((err as { stdout?: unknown }).stdout ?? "").split("\n");
  }
  if (out[0] !== "true" || out[1] === undefined || out[1] === "") return undefined;
  return { top: await realpath(out[1]), commit: /^[0-9a-f]{40,64}$/.test(out[2] ?? "") ? out[2] : undefined };
}

/** An index entry of `git ls-files -v -s`: `<tag> <mode> <oid> <stage>\t<path>` (an untracked file is `? <path>`). */
interface IndexRecord {
  tag: string;
  mode: string;
  oid: string;
  stage: string;
  path: string;
}

const OID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** The index entry a record describes; undefined for an untracked file's. Parsed by position: a regular expression per record cost a tenth of a warm snapshot. */
function indexRecord(record: string): IndexRecord | undefined {
  if (record[0] === "?" || record[1] !== " " || record[8] !== " ") return undefined;
  const tab = record.indexOf("\t", 9);
  if (tab < 0 || record[tab - 2] !== " ") return undefined;
  const oid = record.slice(9, tab - 2);
  if (!OID.test(oid)) return undefined;
  return { tag: record[0]!, mode: record.slice(2, 8), oid, stage: record[tab - 1]!, path: record.slice(tab + 1) };
}

function listGitTree(raw: Buffer, changedRaw: Buffer | undefined): Omit<TreeListing, "base"> {
  let last: string | undefined;
  const paths: string[] = [];
  const skipped: SkippedPath[] = [];
  const clean = new Map<string, IndexedFile>();
  const changed = changedRaw === undefined ? undefined : new Set(changedRaw.toString("utf8").split("\0"));
  // Decoded at once when the whole listing is UTF-8; record by record only when some name is not.
  const records = isUtf8(raw) ? raw.toString("utf8").split("\0") : splitNames(raw, skipped);
  for (const record of records) {
    if (record === "") continue;
    const indexed = indexRecord(record);
    const path = indexed?.path ?? record.slice(2);
    if (path.endsWith("/")) {
      skipped.push({ path: path.slice(0, -1), reason: "nested git repository (not descended)" });
      continue;
    }
    // Tag H: cached, stage 0, neither assume-unchanged (lower case) nor skip-worktree (S), whose changes git would not see.
    if (changed !== undefined && indexed !== undefined && indexed.tag === "H" && indexed.stage === "0" && (indexed.mode === "100644" || indexed.mode === "100755") && !changed.has(path)) {
      clean.set(path, { oid: indexed.oid, executable: indexed.mode === "100755" });
    }
    if (path !== last) {
      // A conflicted path is listed once per stage, its stages one after another
      // (the index is sorted by path, and an untracked path is never in it).
      last = path;
      paths.push(path);
    }
  }
  return { paths, skipped, ...(changed !== undefined && { clean }) };
}

/** The path of an `ls-files -v -s` record. */
function nameOf(record: string): string {
  return indexRecord(record)?.path ?? record.slice(2);
}

/** The UTF-8 records of a NUL-separated listing; the others go to `skipped`. */
function splitNames(raw: Buffer, skipped: SkippedPath[]): string[] {
  const names: string[] = [];
  for (let start = 0; start < raw.length; ) {
    let end = raw.indexOf(0, start);
    if (end < 0) end = raw.length;
    const bytes = raw.subarray(start, end);
    start = end + 1;
    if (isUtf8(bytes)) names.push(bytes.toString("utf8"));
    else skipped.push({ path: nameOf(bytes.toString("utf8")), reason: "name is not valid UTF-8" });
  }
  return names;
}

/** The rules of one ignore file, and the directory (relative to the root) they apply under. */
interface IgnoreLevel {
  readonly base: string;
  readonly rules: ReturnType<typeof ignore>;
}

/**
 * Whether `path` is excluded by the ignore files of its ancestors, as git
 * reads nested ignore files: each relative to its own directory, deeper files
 * and later lines overriding, so a deeper `!pattern` takes a path back.
 */
function isIgnored(levels: readonly IgnoreLevel[], path: string, directory: boolean): boolean {
  let ignored = false;
  for (const { base, rules } of levels) {
    const relative = base === "" ? path : path.slice(base.length + 1);
    const verdict = rules.test(directory ? `${relative}/` : relative);
    if (verdict.ignored) ignored = true;
    else if (verdict.unignored) ignored = false;
  }
  return ignored;
}

/**
 * The first of `paths` (relative to `root`, a tree outside git) that the
 * tree's {@link IGNORE_FILE}s exclude, by itself or through a directory of
 * it, as a snapshot of the tree leaves such paths out; undefined when none
 * is. Ignore files are read as the snapshot reads them: regular files only.
 */
export async function firstIgnoredPath(root: string, paths: readonly string[]): Promise<string | undefined> {
  const levelsAt = new Map<string, Promise<IgnoreLevel | undefined>>();
  const levelAt = (prefix: string): Promise<IgnoreLevel | undefined> => {
    let level = levelsAt.get(prefix);
    if (level === undefined) {
      const file = join(root, prefix, IGNORE_FILE);
      level = lstat(file)
        .then(async (st) => (st.isFile() ? { base: prefix, rules: ignore().add(await readFile(file, "utf8")) } : undefined))
        .catch(() => undefined);
      levelsAt.set(prefix, level);
    }
    return level;
  };
  for (const path of paths) {
    const parts = path.split("/");
    const levels: IgnoreLevel[] = [];
    for (let i = 0; i < parts.length; i++) {
      const level = await levelAt(parts.slice(0, i).join("/"));
      if (level !== undefined) levels.push(level);
      if (isIgnored(levels, parts.slice(0, i + 1).join("/"), i < parts.length - 1)) return path;
    }
  }
  return undefined;
}

async function listPlainTree(root: string, maxPaths: number): Promise<TreeListing> {
  const paths: string[] = [];
  const skipped: SkippedPath[] = [];
  const pending: { prefix: string; levels: readonly IgnoreLevel[] }[] = [{ prefix: "", levels: [] }];
  while (pending.length > 0) {
    const { prefix, levels: above } = pending.pop()!;
    const directory = prefix === "" ? root : join(root, prefix);
    const names = await readdir(directory, { withFileTypes: true, encoding: "buffer" });
    // A linked ignore file is not followed: rules come from inside the tree only.
    const hasRules = names.some((d) => d.isFile() && d.name.toString("utf8") === IGNORE_FILE);
    const levels = hasRules ? [...above, { base: prefix, rules: ignore().add(await readFile(join(directory, IGNORE_FILE), "utf8")) }] : above;
    for (const dirent of names) {
      const name = dirent.name.toString("utf8");
      const path = prefix === "" ? name : `${prefix}/${name}`;
      if (name.toLowerCase() === ".git") continue;
      if (!isUtf8(dirent.name)) {
        skipped.push({ path, reason: "name is not valid UTF-8" });
      } else if (name.includes("\\")) {
        // The ignore rules (and other systems) read a backslash as a separator.
        skipped.push({ path, reason: "name contains a backslash" });
      } else if (dirent.isDirectory()) {
        if (!isIgnored(levels, path, true)) pending.push({ prefix: path, levels });
      } else if (!isIgnored(levels, path, false)) {
        paths.push(path);
        // Stop walking a huge tree (a home directory, a node_modules) as soon as it is too big.
        if (paths.length > maxPaths) {
          throw new InvalidInputError(`more than ${maxPaths} files; list what to leave out in ${IGNORE_FILE}`, root);
        }
      }
    }
  }
  return { paths, skipped, base: undefined };
}
