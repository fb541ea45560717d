import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";
import { helloRepository } from "../helpers/git.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

const TASK = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8";

/**
 * What a node's HTTP API hands out for a task whose executor is hostile: the
 * patch and artifacts are the executor's bytes, relayed as they were stored.
 */
async function resultServer(patch: string, artifacts: Array<{ path: string; bytes: string }> = []): Promise<string> {
  const server: Server = createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const base = `/v1/tasks/${TASK}`;
    if (url === `${base}/patch`) return void res.writeHead(200, { "content-type": "text/x-diff" }).end(patch);
    if (url === `${base}/artifacts`) return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ artifacts: artifacts.map((a) => ({ path: a.path, size: a.bytes.length })) }));
    // Where the CLI asks for it, '..' resolved by its URL as by any client's.
    const artifact = artifacts.find((a) => req.url === new URL(`${base}/artifacts/${a.path.split("/").map(encodeURIComponent).join("/")}`, "http://x").pathname);
    if (artifact !== undefined) return void res.writeHead(200, { "content-type": "application/octet-stream" }).end(artifact.bytes);
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "NOT_FOUND", message: url } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A git repository with one commit of `a.txt`, `.env` ignored and present (a secret a snapshot never sends). */
function repository(dir: string): { dir: string; git: (...args: string[]) => string } {
  const git = helloRepository(dir);
  writeFileSync(join(dir, ".gitignore"), ".env\n");
  git("add", ".gitignore");
  git("commit", "-qm", "ignore .env");
  writeFileSync(join(dir, ".env"), "API_KEY=secret\n");
  return { dir, git };
}

describe("task apply of a hostile executor's patch (real git, real CLI)", () => {
  it("refuses a patch that copies a file from outside the tree, from .git or from what the tree ignores, or renames an ignored file, and changes nothing", { timeout: 60_000 }, async () => {
    const dir = tempDir("cc-hostile-apply-");
    cleanups.push(() => dir.remove());
    const secret = join(dir.path, "secret");
    writeFileSync(secret, "PRIVATE KEY\n");
    const { dir: repo, git } = repository(join(dir.path, "repo"));
    const copy = (from: string, to: string): string => `diff --git a/x b/${to}\nsimilarity index 100%\ncopy from ${from}\ncopy to ${to}\n`;
    const hostile = [
      // git apply checks neither where a copy's source is nor that the tree holds it.
      copy("../secret", "stolen.txt"),
      copy(secret, "stolen.txt"),
      copy(".git/config", "stolen.txt"),
      copy('"../secret"', "stolen.txt"),
      // A file the snapshot never sent, moved to where the next snapshot sends it.
      copy(".env", "notes.txt"),
      `diff --git a/.env b/notes.txt\nsimilarity index 100%\nrename from .env\nrename to notes.txt\n`,
      `diff --git "a/.env" "b/notes.txt"\nsimilarity index 100%\nrename from "\\056env"\nrename to notes.txt\n`,
      // Ignored files whose content is known (an installed package's): a change git status never shows.
      `diff --git a/.env b/.env\n--- a/.env\n+++ b/.env\n@@ -1 +1 @@\n-API_KEY=secret\n+API_KEY=mine\n`,
      // The same as a plain patch's second file, after a git one's hunk.
      `diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-hello\n+hi\n--- x/.env\n+++ y/.env\n@@ -1 +1 @@\n-API_KEY=secret\n+API_KEY=mine\n`,
    ];
    // Refused before git runs, with --check or without: the two take turns down the table.
    for (const [i, patch] of hostile.entries()) {
      const applied = await runCli(["--server", await resultServer(patch), "--token", "t", "task", "apply", TASK, "--repo", repo, ...(i % 2 === 1 ? ["--check"] : [])], dir.path);
      expect(applied.code, `${patch}\n${applied.stdout}`).toBe(1);
      expect(applied.stderr).toMatch(/nothing was changed/);
      expect(git("status", "--porcelain", "--ignored")).toBe("!! .env\n");
      expect(readFileSync(join(repo, ".env"), "utf8")).toBe("API_KEY=secret\n");
    }
    // What an executor's diff does make (a rename of a file the tree holds, changed) still applies.
    // A removed line "-- a/.env" is "--- a/.env" in its hunk: a line, not a header.
    writeFileSync(join(repo, "a.txt"), "hello\n-- a/.env\n");
    git("commit", "-qam", "two lines");
    const rename = "diff --git a/a.txt b/b.txt\nsimilarity index 60%\nrename from a.txt\nrename to b.txt\n--- a/a.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n hello\n--- a/.env\n+world\n";
    const ok = await runCli(["--server", await resultServer(rename), "--token", "t", "task", "apply", TASK, "--repo", repo], dir.path);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readFileSync(join(repo, "b.txt"), "utf8")).toBe("hello\nworld\n");
    expect(existsSync(join(repo, "a.txt"))).toBe(false);
  });
});

describe("task apply --3way (real git, real CLI)", () => {
  it("refuses a patch that would merge with conflicts, changing nothing (as --check says), and merges one that does not", { timeout: 60_000 }, async () => {
    const dir = tempDir("cc-apply-3way-");
    cleanups.push(() => dir.remove());
    const { dir: repo, git } = repository(join(dir.path, "repo"));
    writeFileSync(join(repo, "lines.txt"), "one\ntwo\nthree\nfour\nfive\nsix\n");
    git("add", "lines.txt");
    git("commit", "-qm", "lines");
    // The executor's change, against the tree as it was sent: its patch names the blobs it changes, as a result's does.
    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the task\nthree\nfour\nfive\nsix\n");
    const patch = git("diff", "--full-index", "--binary");
    git("checkout", "-q", "--", "lines.txt");
    const apply = async (...flags: string[]) => runCli(["--server", await resultServer(patch), "--token", "t", "task", "apply", TASK, "--repo", repo, "--3way", ...flags], dir.path);

    // The user changed the same line since: a conflict.
    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the user\nthree\nfour\nfive\nsix\n");
    git("commit", "-qam", "user");
    const before = git("rev-parse", "HEAD:lines.txt").trim();
    for (const flags of [["--check"], []]) {
      const refused = await apply(...flags);
      expect(refused.code, refused.stdout).toBe(1);
      expect(refused.stderr).toMatch(/conflicts with .*nothing was changed[\s\S]*lines\.txt/);
      expect(git("status", "--porcelain")).toBe("");
      expect(git("ls-files", "--stage", "lines.txt")).toMatch(new RegExp(`^100644 ${before} 0\tlines.txt\n$`));
      expect(readFileSync(join(repo, "lines.txt"), "utf8")).toBe("one\nTWO by the user\nthree\nfour\nfive\nsix\n");
    }

    // The user changed another line instead: the two merge.
    git("reset", "-q", "--hard", "HEAD~1");
    writeFileSync(join(repo, "lines.txt"), "one\ntwo\nthree\nfour\nfive\nSIX by the user\n");
    git("commit", "-qam", "user elsewhere");
    const merged = await apply();
    expect(merged.code, merged.stderr).toBe(0);
    expect(readFileSync(join(repo, "lines.txt"), "utf8")).toBe("one\nTWO by the task\nthree\nfour\nfive\nSIX by the user\n");
  });
});

describe("task apply to a tree below its work tree's top (a task submitted with --repo of a subdirectory)", () => {
  it("places the patch's paths under that directory, with and without --3way, and holds them to the repository's ignore rules there", { timeout: 60_000 }, async () => {
    const dir = tempDir("cc-apply-below-");
    cleanups.push(() => dir.remove());
    const { dir: repo, git } = repository(join(dir.path, "repo"));
    const pkg = join(repo, "pkg");
    mkdirSync(pkg);
    writeFileSync(join(pkg, "x.txt"), "x\n");
    writeFileSync(join(repo, ".gitignore"), ".env\n/pkg/secret.txt\n");
    git("add", ".");
    git("commit", "-qm", "pkg");
    // The result of a task on a snapshot of pkg/: its paths are relative to pkg/.
    const patch = "diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-x\n+changed by the task\n" + "diff --git a/added.txt b/added.txt\nnew file mode 100644\n--- /dev/null\n+++ b/added.txt\n@@ -0,0 +1 @@\n+new\n";
    const apply = async (p: string, ...flags: string[]) => runCli(["--server", await resultServer(p), "--token", "t", "task", "apply", TASK, "--repo", pkg, ...flags], dir.path);
    for (const flags of [[], ["--3way"]]) {
      const applied = await apply(patch, ...flags);
      expect(applied.code, applied.stderr).toBe(0);
      expect(readFileSync(join(pkg, "x.txt"), "utf8")).toBe("changed by the task\n");
      expect(readFileSync(join(pkg, "added.txt"), "utf8")).toBe("new\n");
      expect(existsSync(join(repo, "added.txt")) || existsSync(join(repo, "x.txt"))).toBe(false);
      git("checkout", "-q", "--", ".");
      git("clean", "-qf", "pkg");
    }
    // pkg/secret.txt is ignored from the top: a patch touching secret.txt there is refused.
    writeFileSync(join(pkg, "secret.txt"), "token\n");
    const refused = await apply("diff --git a/secret.txt b/secret.txt\n--- a/secret.txt\n+++ b/secret.txt\n@@ -1 +1 @@\n-token\n+mine\n");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/pkg\/secret\.txt", which this tree ignores/);
    expect(readFileSync(join(pkg, "secret.txt"), "utf8")).toBe("token\n");
  });
});

describe("task artifacts of a hostile result (real CLI, real files)", () => {
  it("refuses names that leave --out, go through a link, name a file twice or write over one, before writing anything", { timeout: 60_000 }, async () => {
    const dir = tempDir("cc-hostile-artifacts-");
    cleanups.push(() => dir.remove());
    const outside = join(dir.path, "outside");
    mkdirSync(outside);
    const out = join(dir.path, "out");
    mkdirSync(out);
    writeFileSync(join(out, "kept.txt"), "mine\n");
    symlinkSync(outside, join(out, "link"));
    const first = { path: "ok/first.txt", bytes: "first\n" };
    const hostile: Array<Array<{ path: string; bytes: string }>> = [
      [first, { path: "../escape.txt", bytes: "x" }],
      [first, { path: join(outside, "abs.txt"), bytes: "x" }],
      [first, { path: ".git/hooks/pre-commit", bytes: "x" }],
      [first, { path: "link/through.txt", bytes: "x" }],
      [first, { path: "kept.txt", bytes: "theirs\n" }],
      [first, { path: "twice.txt", bytes: "a" }, { path: "twice.txt", bytes: "b" }],
      [first, { path: "d", bytes: "a" }, { path: "d/x", bytes: "b" }],
    ];
    for (const artifacts of hostile) {
      const server = ["--server", await resultServer("", artifacts), "--token", "t"];
      const got = await runCli([...server, "task", "artifacts", TASK, "--out", out], dir.path);
      expect(got.code, `${JSON.stringify(artifacts)}\n${got.stdout}`).toBe(1);
      expect(got.stderr).toMatch(/nothing was written/);
      // Not even the artifact named before the bad one.
      expect(readdirSync(out).sort()).toEqual(["kept.txt", "link"]);
      expect(readdirSync(outside)).toEqual([]);
      expect(existsSync(join(dir.path, "escape.txt"))).toBe(false);
      expect(readFileSync(join(out, "kept.txt"), "utf8")).toBe("mine\n");
    }
    const fine = await runCli(["--server", await resultServer("", [first, { path: "ok/second.txt", bytes: "second\n" }]), "--token", "t", "task", "artifacts", TASK, "--out", out], dir.path);
    expect(fine.code, fine.stderr).toBe(0);
    expect(readFileSync(join(out, "ok", "second.txt"), "utf8")).toBe("second\n");
  });
});
