import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { collectChanges, trackWorkspace } from "../../src/workspace/git-changes.js";
import { blobDigest, CHUNK_SIZE } from "../../src/workspace/manifest.js";
import { materializeTree, stampOf } from "../../src/workspace/materialize.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import { tempDir } from "../helpers/temp-dir.js";

const ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", LC_ALL: "C" };
const GIT = ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "core.quotePath=false"];

function git(cwd: string, env: Record<string, string>, ...args: string[]): Buffer {
  return execFileSync("git", [...GIT, ...args], { cwd, env: { ...ENV, ...env }, maxBuffer: 256 * 1024 * 1024 });
}

function write(root: string, path: string, content: string | Uint8Array, mode = 0o644): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), content);
  chmodSync(join(root, path), mode);
}

/** What the patch of `after` against `before` is when git itself tracks the whole tree: the behaviour the collector keeps. */
function referencePatch(before: string, after: string, scratch: string): Buffer {
  const env = { GIT_DIR: scratch, GIT_WORK_TREE: before };
  git(before, env, "init", "-q");
  git(before, env, "add", "-A", "--force");
  git(before, env, "commit", "-qm", "base", "--allow-empty");
  const base = git(before, env, "rev-parse", "HEAD").toString().trim();
  const now = { GIT_DIR: scratch, GIT_WORK_TREE: after };
  git(after, now, "add", "-A");
  return git(after, now, "diff", "--cached", "--binary", "--full-index", "-M", base);
}

describe("collectChanges", () => {
  let home: { path: string; remove: () => void };
  beforeEach(() => {
    home = tempDir("cc-changes-");
  });
  afterEach(() => home.remove());

  /** A tree on disk, snapshotted and materialised as a task's workspace. */
  async function prepare(build: (root: string) => void) {
    const source = join(home.path, "source");
    mkdirSync(source);
    build(source);
    const snap = await snapshotDirectory(source);
    const blobs = new Map<string, Uint8Array>();
    for (const d of await Promise.all([...new Set(snap.manifest.entries.flatMap((e) => (e.kind === "file" ? e.chunks : [])))].map(async (d) => [d, (await snap.sources.read(d))!] as const))) blobs.set(d[0], d[1]);
    const workTree = join(home.path, "work");
    const tree = await materializeTree(snap.manifest, workTree, (d) => blobs.get(d)!);
    const tracking = await trackWorkspace(workTree, join(home.path, "git"), snap.manifest, tree);
    const read = (d: string): Promise<Uint8Array> => Promise.resolve(blobs.get(d)!);
    return { source, workTree, tracking, read, manifest: snap.manifest };
  }

  it("gives git's own patch for edits, deletions, renames, mode and type changes, binary files and links, leaving new ignored files out", async () => {
    const big = Buffer.alloc(CHUNK_SIZE + 1000, 7);
    const { source, workTree, tracking, read } = await prepare((root) => {
      write(root, ".gitignore", "*.log\n");
      write(root, "a.txt", "a\n");
      write(root, "b.txt", "b\n");
      write(root, "kept.log", "ignored, but in the base: followed\n");
      write(root, "moved.txt", "long enough to be seen as renamed when it moves\n".repeat(5));
      write(root, "run.sh", "echo run\n");
      write(root, "tool", "#!/bin/sh\n", 0o755);
      write(root, "data.bin", Buffer.from([0, 1, 2, 255]));
      write(root, "big.bin", big);
      write(root, "dir/becomes-file/x", "x\n");
      write(root, "file-becomes-dir", "f\n");
      write(root, "name with \"quotes\"\nand a newline", "odd\n");
      symlinkSync("a.txt", join(root, "link"));
      symlinkSync("b.txt", join(root, "link-to-file"));
      write(root, "same.txt", "rewritten with the same bytes\n");
    });
    const after = workTree;
    writeFileSync(join(after, "a.txt"), "a\nedited\n");
    rmSync(join(after, "b.txt"));
    writeFileSync(join(after, "kept.log"), "changed, still followed\n");
    writeFileSync(join(after, "new.log"), "new and ignored: left out\n");
    mkdirSync(join(after, "src"));
    renameSync(join(after, "moved.txt"), join(after, "src/renamed.txt"));
    chmodSync(join(after, "run.sh"), 0o755);
    chmodSync(join(after, "tool"), 0o644);
    writeFileSync(join(after, "image.bin"), Buffer.from([0, 0, 1, 2, 3, 254, 255, 0]));
    big[CHUNK_SIZE + 5] = 9;
    writeFileSync(join(after, "big.bin"), big);
    rmSync(join(after, "dir/becomes-file"), { recursive: true });
    writeFileSync(join(after, "dir/becomes-file"), "now a file\n");
    rmSync(join(after, "file-becomes-dir"));
    write(after, "file-becomes-dir/inner", "inner\n");
    rmSync(join(after, "link"));
    symlinkSync("src/renamed.txt", join(after, "link"));
    rmSync(join(after, "link-to-file"));
    writeFileSync(join(after, "link-to-file"), "a file now\n");
    writeFileSync(join(after, "same.txt"), "rewritten with the same bytes\n");
    write(after, "ünïcode/ß.txt", "utf-8 names\n");
    // The agent's own repository metadata is never part of the result.
    write(after, ".git/config", "[core]\n");

    const changes = await collectChanges(tracking, read);
    const reference = referencePatch(source, after, join(home.path, "reference-git"));
    expect(changes.patch.toString("utf8")).toBe(reference.toString("utf8"));
    expect(changes.patch.toString("utf8")).not.toContain("new.log");
    expect(changes.patch.toString("utf8")).toContain("rename to src/renamed.txt");
    expect(changes.patch.toString("utf8")).toContain("GIT binary patch");
    expect(changes).toMatchObject({ added: 4, deleted: 3 });

    // And the patch turns the base into the final tree, as `task apply` does.
    const applied = join(home.path, "applied");
    cpSync(source, applied, { recursive: true, verbatimSymlinks: true });
    git(applied, { GIT_DIR: join(home.path, "apply-git"), GIT_WORK_TREE: applied }, "init", "-q");
    execFileSync("git", ["apply", "--binary", "-"], { cwd: applied, env: { ...ENV, GIT_DIR: join(home.path, "apply-git"), GIT_WORK_TREE: applied }, input: changes.patch });
    rmSync(join(after, "new.log"));
    rmSync(join(after, ".git"), { recursive: true });
    expect((await snapshotDirectory(applied)).treeId).toBe((await snapshotDirectory(after)).treeId);
  });

  it("reads nothing and runs no git when nothing changed", async () => {
    const { tracking, read } = await prepare((root) => {
      write(root, "a.txt", "a\n");
      symlinkSync("a.txt", join(root, "link"));
    });
    const changes = await collectChanges(tracking, () => {
      throw new Error("no base content is needed");
    });
    expect(changes).toEqual({ patch: Buffer.alloc(0), added: 0, modified: 0, deleted: 0 });
    expect(existsSync(join(tracking.gitDir, "HEAD"))).toBe(false);
    void read;
  });

  it("compares the content of a file stamped in the clock tick the tree was settled in", async () => {
    const { workTree, tracking, read, manifest } = await prepare((root) => write(root, "a.txt", "aaaa\n"));
    // A same-size write that left the stamp as it was (the clock had not ticked): only the content tells.
    writeFileSync(join(workTree, "a.txt"), "bbbb\n");
    const stamp = stampOf(lstatSync(join(workTree, "a.txt")));
    const stamps = new Map([["a.txt", stamp]]);
    const racy = await collectChanges({ ...tracking, stamps, settledMs: stamp.mtimeMs }, read);
    expect(racy.patch.toString("utf8")).toContain("-aaaa\n+bbbb");
    // Settled well after: the stamp is trusted, and the change goes unseen (which is why racy stamps are compared).
    const trusted = await collectChanges({ ...tracking, stamps, settledMs: stamp.mtimeMs + 1 }, read);
    expect(trusted.patch.byteLength).toBe(0);
    expect(manifest.entries[0]).toMatchObject({ chunks: [blobDigest(Buffer.from("aaaa\n"))] });
  });
});
