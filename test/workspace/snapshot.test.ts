import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { materializeTree } from "../../src/workspace/materialize.js";
import { blobDigest, CHUNK_SIZE, DEFAULT_MANIFEST_LIMITS, type ManifestEntry } from "../../src/workspace/manifest.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import { SnapshotMemory } from "../../src/workspace/snapshot-memory.js";
import { RACY_MARGIN_MS } from "../../src/workspace/stat-cache.js";
import { tempDir } from "../helpers/temp-dir.js";

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", ...args], {
    cwd,
    encoding: "utf8",
  }).trim();
}

function write(root: string, path: string, content: string | Uint8Array, mode?: number): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), content);
  if (mode !== undefined) chmodSync(join(root, path), mode);
}

/**
 * A new repository in `dir` whose one commit holds `files`, each written well
 * before the index, so that git trusts their stats (no racily clean entries,
 * which it compares by content).
 */
function committedRepository(dir: string, files: ReadonlyArray<readonly [path: string, content: string | Uint8Array]>): void {
  git(dir, "init", "-q");
  const past = Date.now() / 1000 - 100;
  for (const [path, content] of files) {
    write(dir, path, content);
    utimesSync(join(dir, path), past, past);
  }
  git(dir, "add", "-A");
  git(dir, "commit", "-qm", "base");
}

/** The entry a file on disk should have, computed independently of the snapshot code. */
function expectedFile(root: string, path: string): ManifestEntry {
  const bytes = readFileSync(join(root, path));
  const chunks: string[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK_SIZE) chunks.push(blobDigest(bytes.subarray(at, at + CHUNK_SIZE)));
  return { path, kind: "file", executable: (statSync(join(root, path)).mode & 0o100) !== 0, size: bytes.length, chunks };
}

async function readAll(source: { read(d: string): Promise<Uint8Array | undefined> }, digest: string): Promise<Uint8Array> {
  const bytes = await source.read(digest);
  if (bytes === undefined) throw new Error(`blob ${digest} is not readable`);
  return bytes;
}

describe("snapshotDirectory", () => {
  let dirs: { path: string; remove: () => void }[];
  const fresh = (): string => {
    const dir = tempDir("cc-snapshot-");
    dirs.push(dir);
    return dir.path;
  };
  beforeEach(() => {
    dirs = [];
  });
  afterEach(() => {
    for (const d of dirs) d.remove();
  });

  it("in a git repository takes HEAD plus staged, unstaged and untracked changes, minus ignored and deleted files", async () => {
    const repo = fresh();
    git(repo, "init", "-q");
    write(repo, ".gitignore", "*.log\nbuild/\n");
    write(repo, "a.txt", "a\n");
    write(repo, "gone.txt", "deleted in the working tree\n");
    write(repo, "staged-gone.txt", "removed from the index\n");
    write(repo, "became-fifo", "tracked, then replaced by a fifo\n");
    write(repo, "mod.txt", "committed\n");
    write(repo, "stage.txt", "committed\n");
    write(repo, "run.sh", "#!/bin/sh\necho run\n", 0o755);
    write(repo, "dir/nested.txt", "nested\n");
    write(repo, "bin.dat", randomBytes(2 * CHUNK_SIZE + 1000));
    symlinkSync("a.txt", join(repo, "link"));
    git(repo, "add", "-A");
    git(repo, "commit", "-qm", "base");
    rmSync(join(repo, "gone.txt"));
    git(repo, "rm", "-q", "staged-gone.txt");
    write(repo, "mod.txt", "changed, not staged\n");
    write(repo, "stage.txt", "changed and staged\n");
    write(repo, "added.txt", "new and staged\n");
    git(repo, "add", "stage.txt", "added.txt");
    write(repo, "new.txt", "untracked\n");
    write(repo, "fresh/x.bin", new Uint8Array([0, 255, 0, 10, 13]));
    writeFileSync(Buffer.from(`${repo}/fresh/latin1-\xe9`, "latin1"), "a name that is not UTF-8");
    write(repo, "debug.log", "ignored\n");
    write(repo, "build/out.js", "ignored\n");
    // git lists no untracked special file; a tracked path that became one is listed, then skipped.
    execFileSync("mkfifo", [join(repo, "pipe")]);
    rmSync(join(repo, "became-fifo"));
    execFileSync("mkfifo", [join(repo, "became-fifo")]);
    symlinkSync("../elsewhere", join(repo, "outside"));

    const snapshot = await snapshotDirectory(repo);
    const link: ManifestEntry = { path: "link", kind: "symlink", target: "a.txt" };
    const files = [".gitignore", "a.txt", "added.txt", "bin.dat", "dir/nested.txt", "fresh/x.bin", "mod.txt", "new.txt", "run.sh", "stage.txt"];
    const expected = [...files.map((p) => expectedFile(repo, p)), link].sort((x, y) => (x.path < y.path ? -1 : 1));
    expect(snapshot.manifest.entries).toEqual(expected);
    expect(snapshot.manifest.entries.find((e) => e.path === "run.sh")).toMatchObject({ executable: true });
    expect(snapshot.manifest.entries.find((e) => e.path === "bin.dat")).toMatchObject({ size: 2 * CHUNK_SIZE + 1000, chunks: expect.any(Array) as unknown });
    expect(snapshot.skipped).toEqual(
      expect.arrayContaining([
        { path: "became-fifo", reason: "fifo" },
        { path: "fresh/latin1-\ufffd", reason: "name is not valid UTF-8" },
        { path: "outside", reason: 'symlink to "../elsewhere" points outside the tree' },
      ]),
    );
    expect(snapshot.skipped).toHaveLength(3);
    expect(snapshot.base).toEqual({ commit: git(repo, "rev-parse", "HEAD") });

    const sub = await snapshotDirectory(join(repo, "dir"));
    expect(sub.manifest.entries.map((e) => e.path)).toEqual(["nested.txt"]);
    expect(sub.base).toBeUndefined();
  });

  it("materialises back to byte-identical files, modes and links, whose own snapshot has the same tree id", async () => {
    const repo = fresh();
    git(repo, "init", "-q");
    write(repo, "src/main.ts", "export {};\n");
    write(repo, "tool", "#!/bin/sh\n", 0o755);
    write(repo, "empty", "");
    write(repo, "data/big.bin", randomBytes(CHUNK_SIZE * 3));
    symlinkSync("../src/main.ts", join(repo, "data/main-link"));
    git(repo, "add", "-A");
    git(repo, "commit", "-qm", "base");
    write(repo, "untracked.txt", "u\n");

    const snapshot = await snapshotDirectory(repo);
    const target = join(fresh(), "copy");
    await materializeTree(snapshot.manifest, target, (d) => readAll(snapshot.sources, d));
    for (const entry of snapshot.manifest.entries) {
      const copy = join(target, entry.path);
      if (entry.kind === "symlink") {
        expect(readlinkSync(copy)).toBe(readlinkSync(join(repo, entry.path)));
        continue;
      }
      expect(readFileSync(copy).equals(readFileSync(join(repo, entry.path)))).toBe(true);
      expect(lstatSync(copy).mode & 0o777).toBe(entry.executable ? 0o755 : 0o644);
    }
    const again = await snapshotDirectory(target);
    expect(again.treeId).toBe(snapshot.treeId);
  });

  it("outside git takes every file except what .coderclawignore excludes, and never .git", async () => {
    const dir = fresh();
    write(dir, ".coderclawignore", "*.log\nbuild/\n!keep.log\n/top-only.txt\n");
    for (const path of ["a.txt", "x.log", "keep.log", "build/out.js", "sub/build/y.js", "top-only.txt", "sub/top-only.txt", ".git/config", "sub/.git", "sub/.Git/x"]) {
      write(dir, path, path);
    }
    write(dir, "back\\slash", "refused name");
    execFileSync("mkfifo", [join(dir, "sub/pipe")]);
    symlinkSync("/etc/passwd", join(dir, "abs-link"));
    symlinkSync("sub/top-only.txt", join(dir, "in-link"));
    writeFileSync(Buffer.from(`${dir}/latin1-\xe9`, "latin1"), "a name that is not UTF-8");
    symlinkSync(Buffer.from("x\xe9", "latin1"), join(dir, "latin1-link"));
    const snapshot = await snapshotDirectory(dir);
    expect(snapshot.manifest.entries.map((e) => e.path)).toEqual([".coderclawignore", "a.txt", "in-link", "keep.log", "sub/top-only.txt"]);
    expect(snapshot.skipped).toEqual(
      expect.arrayContaining([
        { path: "back\\slash", reason: "name contains a backslash" },
        { path: "sub/pipe", reason: "fifo" },
        { path: "abs-link", reason: 'symlink to "/etc/passwd" points to an absolute path' },
        { path: "latin1-\ufffd", reason: "name is not valid UTF-8" },
        { path: "latin1-link", reason: "symlink target is not valid UTF-8" },
      ]),
    );
    expect(snapshot.skipped).toHaveLength(5);
    expect(snapshot.base).toBeUndefined();
  });

  it("outside git reads nested .coderclawignore files as git reads nested .gitignore files", async () => {
    const dir = fresh();
    write(dir, ".coderclawignore", "*.log\nvendor/\n");
    write(dir, "sub/.coderclawignore", "!keep.log\nlocal-only.txt\n");
    for (const path of ["a.log", "local-only.txt", "sub/keep.log", "sub/x.log", "sub/local-only.txt", "sub/deep/keep.log", "other/keep.log", "vendor/sub/.coderclawignore", "vendor/x.txt"]) {
      write(dir, path, path);
    }
    // A linked ignore file is not read.
    write(dir, "elsewhere/rules", "*\n");
    mkdirSync(join(dir, "linked"));
    symlinkSync("../elsewhere/rules", join(dir, "linked/.coderclawignore"));
    write(dir, "linked/kept.txt", "kept");
    const snapshot = await snapshotDirectory(dir);
    expect(snapshot.manifest.entries.map((e) => e.path)).toEqual([
      ".coderclawignore",
      "elsewhere/rules",
      "linked/.coderclawignore",
      "linked/kept.txt",
      "local-only.txt",
      "sub/.coderclawignore",
      "sub/deep/keep.log",
      "sub/keep.log",
    ]);
  });

  it("refuses a tree with more files than the entry limit, in git and out of it", async () => {
    const dir = fresh();
    for (const name of ["a", "b", "c", "d"]) write(dir, `sub/${name}`, name);
    const limits = { ...DEFAULT_MANIFEST_LIMITS, maxEntries: 3 };
    await expect(snapshotDirectory(dir, { limits })).rejects.toThrow(/more than 3 files; list what to leave out in \.coderclawignore/);
    git(dir, "init", "-q");
    await expect(snapshotDirectory(dir, { limits })).rejects.toThrow(/4 paths exceed the limit of 3 entries/);
    write(dir, ".gitignore", "sub/c\nsub/d\n");
    const snapshot = await snapshotDirectory(dir, { limits });
    expect(snapshot.manifest.entries.map((e) => e.path)).toEqual([".gitignore", "sub/a", "sub/b"]);
    // A repository without a commit yet is still a repository, with no base.
    expect(snapshot.base).toBeUndefined();
  });

  it.runIf(process.getuid?.() === 0)("refuses a repository git will not read rather than take it as a plain directory", async () => {
    const dir = fresh();
    git(dir, "init", "-q");
    write(dir, "a.txt", "a");
    execFileSync("chown", ["-R", "nobody", dir]);
    await expect(snapshotDirectory(dir)).rejects.toThrow(/git refuses to read the repository \(it belongs to another user/);
  });

  it("takes a path in a merge conflict once, as the working tree holds it", async () => {
    const repo = fresh();
    git(repo, "init", "-q");
    write(repo, "a.txt", "base\n");
    write(repo, "z.txt", "z\n");
    git(repo, "add", "-A");
    git(repo, "commit", "-qm", "base");
    git(repo, "checkout", "-qb", "other");
    write(repo, "a.txt", "other\n");
    git(repo, "commit", "-qam", "other");
    git(repo, "checkout", "-q", "main");
    write(repo, "a.txt", "main\n");
    git(repo, "commit", "-qam", "main");
    expect(() => git(repo, "merge", "-q", "other")).toThrow();
    const snapshot = await snapshotDirectory(repo);
    expect(snapshot.manifest.entries.map((e) => e.path)).toEqual(["a.txt", "z.txt"]);
    expect(snapshot.manifest.entries[0]).toEqual(expectedFile(repo, "a.txt"));
  });

  it("refuses a path that is not a directory", async () => {
    const dir = fresh();
    write(dir, "file", "x");
    await expect(snapshotDirectory(join(dir, "file"))).rejects.toThrow(/^dir: .*file is not a directory/);
    await expect(snapshotDirectory(join(dir, "missing"))).rejects.toThrow(/^dir: .*missing is not a directory/);
  });

  it("serves blobs from the working tree only while the file still holds them", async () => {
    const dir = fresh();
    write(dir, "a.txt", "first\n");
    const snapshot = await snapshotDirectory(dir);
    const [digest] = (snapshot.manifest.entries[0] as Extract<ManifestEntry, { kind: "file" }>).chunks;
    expect(snapshot.sources.has(digest!)).toBe(true);
    expect(Buffer.from(await readAll(snapshot.sources, digest!)).toString()).toBe("first\n");
    write(dir, "a.txt", "other\n");
    expect(await snapshot.sources.read(digest!)).toBeUndefined();
    expect(snapshot.sources.has(blobDigest(new Uint8Array([9])))).toBe(false);
    expect(await snapshot.sources.read(blobDigest(new Uint8Array([9])))).toBeUndefined();
  });

  it("re-reads no unchanged file with a stat cache, and sees a file rewritten with the same size and mtime", async () => {
    const dir = fresh();
    const cacheFile = join(fresh(), "cache", "stat-cache.json");
    const mtime = 1_700_000_000;
    for (const name of ["f1", "f2", "f3"]) {
      write(dir, name, `content of ${name}`);
      utimesSync(join(dir, name), mtime, mtime);
    }
    // A file changed less than the racy margin before its stat is never trusted from the cache.
    await sleep(RACY_MARGIN_MS + 100);
    const first = await snapshotDirectory(dir, { cacheFile });
    expect(first.stats).toMatchObject({ files: 3, hashedFiles: 3, cachedFiles: 0 });
    const second = await snapshotDirectory(dir, { cacheFile });
    expect(second.stats).toMatchObject({ files: 3, hashedFiles: 0, cachedFiles: 3 });
    expect(second.treeId).toBe(first.treeId);
    // A damaged record is a miss, not a broken manifest.
    const f3 = expectedFile(dir, "f3") as Extract<ManifestEntry, { kind: "file" }>;
    writeFileSync(cacheFile, readFileSync(cacheFile, "utf8").replace(f3.chunks[0]!, "z".repeat(64)));
    const damaged = await snapshotDirectory(dir, { cacheFile });
    expect(damaged.stats).toMatchObject({ hashedFiles: 1, cachedFiles: 2 });
    expect(damaged.treeId).toBe(first.treeId);

    const before = statSync(join(dir, "f1"), { bigint: true });
    writeFileSync(join(dir, "f1"), "CONTENT OF f1");
    utimesSync(join(dir, "f1"), mtime, mtime);
    const after = statSync(join(dir, "f1"), { bigint: true });
    expect([after.size, after.mtimeNs, after.ino]).toEqual([before.size, before.mtimeNs, before.ino]);
    const third = await snapshotDirectory(dir, { cacheFile });
    expect(third.stats).toMatchObject({ hashedFiles: 1, cachedFiles: 2 });
    expect(third.manifest.entries[0]).toEqual(expectedFile(dir, "f1"));

    // Replaced by another inode with the same size and mtime.
    write(dir, "f2.new", "CONTENT OF f2");
    utimesSync(join(dir, "f2.new"), mtime, mtime);
    renameSync(join(dir, "f2.new"), join(dir, "f2"));
    const fourth = await snapshotDirectory(dir, { cacheFile });
    expect(fourth.manifest.entries[1]).toEqual(expectedFile(dir, "f2"));

    writeFileSync(cacheFile, readFileSync(cacheFile, "utf8").slice(0, 40));
    const afterCorruption = await snapshotDirectory(dir, { cacheFile });
    expect(afterCorruption.stats).toMatchObject({ hashedFiles: 3, cachedFiles: 0 });
    expect(afterCorruption.treeId).toBe(fourth.treeId);

    // A deleted file drops out of the cache; the others, recorded once past the racy margin, stay in it.
    await sleep(RACY_MARGIN_MS + 100);
    await snapshotDirectory(dir, { cacheFile });
    rmSync(join(dir, "f3"));
    await snapshotDirectory(dir, { cacheFile });
    const kept = readFileSync(cacheFile, "utf8");
    expect([kept.includes("f1\0"), kept.includes("f2\0"), kept.includes("f3\0")]).toEqual([true, true, false]);
    expect((await snapshotDirectory(dir, { cacheFile })).stats).toMatchObject({ hashedFiles: 0, cachedFiles: 2 });
  });

  it("in a git repository takes a clean index entry from the cache by its blob id, and reads what git would not see changed", async () => {
    const dir = fresh();
    const cacheFile = join(fresh(), "cache", "stat-cache");
    committedRepository(dir, ["a.txt", "b.txt", "c.txt", "d.sh", "e.txt"].map((name) => [name, `content of ${name}\n`]));
    const first = await snapshotDirectory(dir, { cacheFile, indexCheck: true });
    expect(first.stats).toMatchObject({ files: 5, hashedFiles: 5 });
    // Recorded by the blob git names (no racy margin: the bytes were checked against it), so taken without a stat next time.
    expect(readFileSync(cacheFile, "utf8")).toContain(`git ${git(dir, "rev-parse", "HEAD:a.txt")} `);
    const second = await snapshotDirectory(dir, { cacheFile, indexCheck: true });
    expect(second.stats).toMatchObject({ files: 5, hashedFiles: 0, cachedFiles: 5 });
    expect(second.treeId).toBe(first.treeId);

    // Changes git's index check would miss (its flags say not to look) or that only a stat shows.
    git(dir, "update-index", "--assume-unchanged", "b.txt");
    git(dir, "update-index", "--skip-worktree", "c.txt");
    write(dir, "b.txt", "b changed behind git's back\n");
    write(dir, "c.txt", "c changed behind git's back\n");
    chmodSync(join(dir, "d.sh"), 0o755);
    // Same size, a new inode: the index's stat no longer matches.
    write(dir, "e.new", "CONTENT OF e.txt\n");
    renameSync(join(dir, "e.new"), join(dir, "e.txt"));
    const third = await snapshotDirectory(dir, { cacheFile, concurrency: 1, indexCheck: true });
    expect(third.manifest.entries).toEqual(["a.txt", "b.txt", "c.txt", "d.sh", "e.txt"].map((name) => expectedFile(dir, name)));
    expect(third.stats).toMatchObject({ hashedFiles: 4, cachedFiles: 1 });

    // A repository that tells git to trust less of a stat does not make a rewrite of the same size and mtime pass as clean.
    git(dir, "config", "core.checkStat", "minimal");
    git(dir, "config", "core.trustctime", "false");
    const { atime, mtime } = statSync(join(dir, "a.txt"));
    // Git compares stat times to the second (unless built with USE_NSEC): the rewrite's ctime must fall in a later second than the index's record.
    await sleep(1100);
    write(dir, "a.txt", "CONTENT OF A.TXT\n");
    utimesSync(join(dir, "a.txt"), atime, mtime);
    const fourth = await snapshotDirectory(dir, { cacheFile, indexCheck: true });
    expect(fourth.manifest.entries[0]).toEqual(expectedFile(dir, "a.txt"));
  });

  it("keeps a file recorded by stat by its blob id once git's index shows it unchanged, without reading it", async () => {
    const dir = fresh();
    const cacheFile = join(fresh(), "cache", "stat-cache");
    git(dir, "init", "-q");
    write(dir, "kept.txt", "kept\n");
    git(dir, "add", "-A");
    git(dir, "commit", "-qm", "base");
    // Past the racy margin, so that the first snapshot records the file by its stat.
    await sleep(RACY_MARGIN_MS + 100);
    expect((await snapshotDirectory(dir, { cacheFile, indexCheck: false })).stats).toMatchObject({ hashedFiles: 1 });
    expect(readFileSync(cacheFile, "utf8")).not.toContain("git ");
    expect((await snapshotDirectory(dir, { cacheFile, indexCheck: true })).stats).toMatchObject({ hashedFiles: 0, cachedFiles: 1 });
    expect(readFileSync(cacheFile, "utf8")).toContain(`git ${git(dir, "rev-parse", "HEAD:kept.txt")} 5`);
  });

  it("with a memory kept between snapshots, gives for a changing repository the manifest a snapshot from scratch gives, and reads a cache file another process rewrote", async () => {
    const dir = fresh();
    const cacheFile = join(fresh(), "cache", "stat-cache");
    // Enough files for several pieces.
    committedRepository(dir, Array.from({ length: 700 }, (_, i) => [`src/d${i % 9}/f${i}.txt`, `file ${i}\n`]));
    const memory = new SnapshotMemory();
    const same = async (what: string): Promise<Awaited<ReturnType<typeof snapshotDirectory>>> => {
      const kept = await snapshotDirectory(dir, { cacheFile, memory, indexCheck: true });
      const scratch = await snapshotDirectory(dir);
      expect(kept.manifest.entries, what).toEqual(scratch.manifest.entries);
      expect(kept.pieces.map((p) => p.digest), what).toEqual(scratch.pieces.map((p) => p.digest));
      expect(kept.treeId, what).toBe(scratch.treeId);
      return kept;
    };
    const first = await same("first");
    expect(first.pieces.length).toBeGreaterThan(2);
    const second = await same("unchanged");
    expect(second.stats).toMatchObject({ hashedFiles: 0, cachedFiles: 700 });
    // Every piece taken again as it was, not encoded anew; git's listing, the same bytes, not parsed again.
    expect(second.pieces.every((p, i) => p === first.pieces[i])).toBe(true);
    expect(second.inGit).toBe(first.inGit);

    write(dir, "src/d3/f3.txt", "changed\n");
    const third = await same("one file changed");
    expect(third.pieces.filter((p) => !second.pieces.includes(p))).toHaveLength(1);
    expect(third.inGit).not.toBe(second.inGit);

    rmSync(join(dir, "src/d1/f10.txt"));
    chmodSync(join(dir, "src/d2/f20.txt"), 0o755);
    renameSync(join(dir, "src/d4/f40.txt"), join(dir, "src/d4/moved.txt"));
    write(dir, "a-first.txt", "sorts first\n");
    write(dir, "zz-last.txt", "sorts last, after what ended the tree\n");
    await same("deleted, chmod, renamed, added first and last");
    git(dir, "add", "-A");
    git(dir, "commit", "-qm", "next");
    await same("committed");
    rmSync(join(dir, "zz-last.txt"));
    await same("the last entry removed again");

    // Another inode, same size and mtime.
    const { atime, mtime } = statSync(join(dir, "src/d5/f50.txt"));
    write(dir, "src/d5/f50.new", "FILE 50\n");
    utimesSync(join(dir, "src/d5/f50.new"), atime, mtime);
    renameSync(join(dir, "src/d5/f50.new"), join(dir, "src/d5/f50.txt"));
    await same("replaced by a file of the same size and mtime");

    // Another process's rewrite of the cache file wins over what this one keeps: its damaged record is a miss.
    const hashedBefore = (await same("before the cache file is rewritten")).stats.hashedFiles;
    const text = readFileSync(cacheFile, "utf8");
    const digest = (expectedFile(dir, "src/d6/f60.txt") as Extract<ManifestEntry, { kind: "file" }>).chunks[0]!;
    expect(text).toContain(digest);
    writeFileSync(cacheFile, text.replace(digest, "z".repeat(64)));
    expect((await same("cache file rewritten")).stats.hashedFiles).toBe(hashedBefore + 1);
  });

  it("hashes thousands of small files on two threads into the entries one thread gives, and records them all in the stat cache", async () => {
    const root = fresh();
    const cacheFile = join(fresh(), "stat-cache");
    const paths: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const path = `d${i % 7}/f${i}.txt`;
      write(root, path, randomBytes(i % 50 === 0 ? 0 : 1 + ((i * 7919) % 9000)), i % 11 === 0 ? 0o755 : 0o644);
      paths.push(path);
    }
    write(root, "large.bin", randomBytes(2 * CHUNK_SIZE + 5));
    paths.push("large.bin");
    const cold = await snapshotDirectory(root, { cacheFile });
    expect(cold.stats).toMatchObject({ files: paths.length, hashedFiles: paths.length, cachedFiles: 0 });
    expect(cold.manifest.entries).toEqual(paths.map((path) => expectedFile(root, path)).sort((a, b) => (a.path < b.path ? -1 : 1)));
    // Recorded once the files are older than the racy margin: every one of them, whichever thread hashed it.
    await sleep(RACY_MARGIN_MS + 100);
    await snapshotDirectory(root, { cacheFile });
    const warm = await snapshotDirectory(root, { cacheFile });
    expect(warm.stats).toMatchObject({ files: paths.length, hashedFiles: 0, cachedFiles: paths.length });
    expect(warm.treeId).toBe(cold.treeId);
  });

  it("records a large repository's clean files by blob id from its first snapshot, hashed on two threads, so the second stats none of them", async () => {
    const dir = fresh();
    const cacheFile = join(fresh(), "stat-cache");
    committedRepository(dir, Array.from({ length: 2500 }, (_, i) => [`d${i % 13}/f${i}.txt`, randomBytes(1 + ((i * 7919) % 5000))]));
    // Changed after the commit: hashed, but not by the blob id git's index names.
    write(dir, "d0/f0.txt", "changed since the commit");
    const first = await snapshotDirectory(dir, { cacheFile });
    expect(first.stats).toMatchObject({ files: 2500, hashedFiles: 2500 });
    const records = readFileSync(cacheFile, "utf8");
    expect(records.split("\0git ").length - 1).toBe(2499);
    expect(records).toContain(`d0/f13.txt\0git ${git(dir, "rev-parse", "HEAD:d0/f13.txt")} `);
    expect(records).not.toContain(`d0/f0.txt\0git `);
    // Every clean file by its blob id, without a stat; the changed one hashed again (written within the racy margin).
    const second = await snapshotDirectory(dir, { cacheFile });
    expect(second.stats).toMatchObject({ files: 2500, hashedFiles: 1, cachedFiles: 2499 });
    expect(second.treeId).toBe(first.treeId);
  });

  it("snapshots this repository in well under a second on a warm cache", async () => {
    const cacheFile = join(fresh(), "stat-cache.json");
    const cold = await snapshotDirectory(process.cwd(), { cacheFile });
    expect(cold.manifest.entries.some((e) => e.path === "package.json")).toBe(true);
    expect(cold.manifest.entries.some((e) => e.path.startsWith("node_modules/"))).toBe(false);
    const started = performance.now();
    const warm = await snapshotDirectory(process.cwd(), { cacheFile });
    const elapsed = performance.now() - started;
    expect(warm.stats.cachedFiles).toBeGreaterThan(warm.stats.files / 2);
    expect(elapsed).toBeLessThan(1000);
  });
});
