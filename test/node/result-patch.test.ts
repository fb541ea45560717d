import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyResultCommits, applyResultPatch, writeResultArtifacts } from "../../node/index.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import { tempDir } from "../helpers/temp-dir.js";
import { gitIn } from "../helpers/git.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function repository(): { repo: string; git: (...args: string[]) => string } {
  const dir = tempDir("cc-result-patch-");
  cleanups.push(() => dir.remove());
  const repo = join(dir.path, "repo");
  mkdirSync(repo);
  const git = gitIn(repo);
  git("init", "-q");
  writeFileSync(join(repo, "lines.txt"), "one\ntwo\nthree\nfour\nfive\n");
  writeFileSync(join(repo, ".gitignore"), ".env\n");
  git("add", ".");
  git("commit", "-qm", "init");
  return { repo, git };
}

describe("applyResultPatch and writeResultArtifacts (coderclaw/node, for embedders)", () => {
  it("answer each outcome, and change the tree only when the patch applied whole", async () => {
    const { repo, git } = repository();
    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the task\nthree\nfour\nfive\n");
    const patch = Buffer.from(git("diff", "--full-index"));
    git("checkout", "-q", "--", ".");

    expect(await applyResultPatch(repo, patch, { check: true })).toEqual({ ok: true, applied: false });
    expect(git("status", "--porcelain")).toBe("");
    expect(await applyResultPatch(repo, Buffer.from("diff --git a/x b/y\nsimilarity index 100%\ncopy from ../../etc/passwd\ncopy to y\n"))).toMatchObject({ ok: false, why: "unsafe" });
    expect(await applyResultPatch(repo, Buffer.from("diff --git a/.env b/.env\nnew file mode 100644\n--- /dev/null\n+++ b/.env\n@@ -0,0 +1 @@\n+x\n"))).toMatchObject({ ok: false, why: "unsafe" });

    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the user\nthree\nfour\nfive\n");
    git("commit", "-qam", "user");
    expect(await applyResultPatch(repo, patch)).toMatchObject({ ok: false, why: "does-not-apply" });
    expect(await applyResultPatch(repo, patch, { threeWay: true })).toMatchObject({ ok: false, why: "conflicts", message: expect.stringContaining("lines.txt") });
    expect(git("status", "--porcelain")).toBe("");

    git("reset", "-q", "--hard", "HEAD~1");
    expect(await applyResultPatch(repo, patch)).toEqual({ ok: true, applied: true });
    expect(readFileSync(join(repo, "lines.txt"), "utf8")).toBe("one\nTWO by the task\nthree\nfour\nfive\n");
  });

  it("work on the tree asked for whatever index a GIT_INDEX_FILE in the caller's environment names", async () => {
    const { repo, git } = repository();
    // Tracked although the ignore rules name it: an edit of it is a change the snapshot sent, and applies.
    writeFileSync(join(repo, "build.env"), "tracked\n");
    writeFileSync(join(repo, ".gitignore"), ".env\n*.env\n");
    git("add", "-f", "build.env", ".gitignore");
    git("commit", "-qm", "tracked");
    const patch = Buffer.from("--- a/build.env\n+++ b/build.env\n@@ -1 +1 @@\n-tracked\n+changed\n");
    const elsewhere = tempDir("cc-result-env-");
    cleanups.push(() => elsewhere.remove());
    const saved = process.env.GIT_INDEX_FILE;
    // An index that holds nothing: read in place of the repository's, build.env would be untracked, so ignored.
    process.env.GIT_INDEX_FILE = join(elsewhere.path, "index");
    try {
      expect(await applyResultPatch(repo, patch)).toEqual({ ok: true, applied: true });
    } finally {
      if (saved === undefined) delete process.env.GIT_INDEX_FILE;
      else process.env.GIT_INDEX_FILE = saved;
    }
    expect(readFileSync(join(repo, "build.env"), "utf8")).toBe("changed\n");
  });

  it("refuse, outside git, a patch touching what the tree's .coderclawignore files leave out, as a snapshot leaves it out", async () => {
    const dir = tempDir("cc-result-plain-");
    cleanups.push(() => dir.remove());
    const tree = join(dir.path, "tree");
    mkdirSync(join(tree, "pkg", "build"), { recursive: true });
    writeFileSync(join(tree, ".coderclawignore"), "*.secret\nbuild/\n");
    writeFileSync(join(tree, "pkg", ".coderclawignore"), "!kept.secret\n");
    for (const [path, text] of [["a.txt", "a\n"], ["pkg/x.secret", "s\n"], ["pkg/kept.secret", "k\n"], ["pkg/build/out.txt", "o\n"]] as const) writeFileSync(join(tree, path), text);
    // What a snapshot of the tree takes.
    expect((await snapshotDirectory(tree)).manifest.entries.map((e) => e.path)).toEqual([".coderclawignore", "a.txt", "pkg/.coderclawignore", "pkg/kept.secret"]);
    const edit = (path: string, from: string): Buffer => Buffer.from(`--- a/${path}\n+++ b/${path}\n@@ -1 +1 @@\n-${from}\n+changed\n`);
    expect(await applyResultPatch(tree, edit("pkg/x.secret", "s"))).toMatchObject({ ok: false, why: "unsafe", message: expect.stringContaining('"pkg/x.secret", which this tree\'s .coderclawignore leaves out') });
    expect(await applyResultPatch(tree, edit("pkg/build/out.txt", "o"))).toMatchObject({ ok: false, why: "unsafe" });
    expect(readFileSync(join(tree, "pkg", "x.secret"), "utf8")).toBe("s\n");
    // A deeper file takes a path back, as it does for the snapshot; what no rule names applies.
    expect(await applyResultPatch(tree, edit("pkg/kept.secret", "k"))).toEqual({ ok: true, applied: true });
    expect(await applyResultPatch(tree, edit("a.txt", "a"))).toEqual({ ok: true, applied: true });
    expect(readFileSync(join(tree, "a.txt"), "utf8")).toBe("changed\n");
  });

  it("write artifacts all or none", async () => {
    const dir = tempDir("cc-result-artifacts-");
    cleanups.push(() => dir.remove());
    const out = join(dir.path, "out");
    const bytes = (text: string): Uint8Array => Buffer.from(text);
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("ok") }, { path: "../escape.txt", bytes: bytes("no") }])).toMatch(/escape\.txt/);
    expect(() => readFileSync(join(out, "a", "ok.txt"))).toThrow();
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("ok") }])).toBeUndefined();
    expect(readFileSync(join(out, "a", "ok.txt"), "utf8")).toBe("ok");
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("again") }])).toMatch(/exists already with other bytes/);
    expect(readFileSync(join(out, "a", "ok.txt"), "utf8")).toBe("ok");
  });

  it("writes the same artifacts again into the same directory, keeping what is there with the same bytes; other bytes, or a link, refuse all", async () => {
    const dir = tempDir("cc-result-artifacts-");
    cleanups.push(() => dir.remove());
    const out = join(dir.path, "out");
    const bytes = (text: string): Uint8Array => Buffer.from(text);
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("ok") }])).toBeUndefined();
    // Written again with a new one beside it: the first stays as it was, the new one is written.
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("ok") }, { path: "b/new.txt", bytes: bytes("new") }])).toBeUndefined();
    expect(readFileSync(join(out, "a", "ok.txt"), "utf8")).toBe("ok");
    expect(readFileSync(join(out, "b", "new.txt"), "utf8")).toBe("new");
    // Same size, other bytes: refused, and the artifact after it is not written either.
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("no") }, { path: "c/later.txt", bytes: bytes("later") }])).toMatch(/a\/ok\.txt exists already with other bytes/);
    expect(() => readFileSync(join(out, "c", "later.txt"))).toThrow();
    // A link to a file with the very bytes is no file of the artifact's: refused.
    writeFileSync(join(dir.path, "elsewhere.txt"), "linked");
    symlinkSync(join(dir.path, "elsewhere.txt"), join(out, "a", "link.txt"));
    expect(await writeResultArtifacts(out, [{ path: "a/link.txt", bytes: bytes("linked") }])).toMatch(/link\.txt exists already: /);
  });

  it("put a task's commits on HEAD all or none: refused as a patch is, replayed apart, moved onto only where the tree's own changes allow", async () => {
    const { repo, git } = repository();
    // `git am` commits as the repository's user.
    git("config", "user.name", "the user");
    git("config", "user.email", "user@example.com");
    const head = git("rev-parse", "HEAD").trim();
    const branch = git("rev-parse", "--abbrev-ref", "HEAD").trim();
    git("checkout", "-qb", "agent");
    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the agent\nthree\nfour\nfive\n");
    git("commit", "-qam", "first");
    writeFileSync(join(repo, "new.txt"), "new\n");
    git("add", "new.txt");
    git("commit", "-qm", "second");
    const series = Buffer.from(git("format-patch", "--stdout", "--binary", "--full-index", `${head}..agent`));
    writeFileSync(join(repo, ".env"), "SECRET=1\n");
    git("add", "-f", ".env");
    git("commit", "-qm", "plants an ignored file");
    const ignoredSeries = Buffer.from(git("format-patch", "--stdout", "--binary", "--full-index", "-1"));
    git("checkout", "-q", branch);
    git("branch", "-qD", "agent");
    const worktrees = (): number => git("worktree", "list").trim().split("\n").length;

    const plain = tempDir("cc-result-commits-plain-");
    cleanups.push(() => plain.remove());
    expect(await applyResultCommits(plain.path, series)).toMatchObject({ ok: false, why: "does-not-apply", message: expect.stringContaining("is in no git repository") });
    expect(await applyResultCommits(repo, ignoredSeries)).toMatchObject({ ok: false, why: "unsafe", message: expect.stringContaining('".env"') });

    // The user's uncommitted edit of a line the first commit changes: the series replays, but HEAD cannot move over the edit.
    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the user\nthree\nfour\nfive\n");
    expect(await applyResultCommits(repo, series)).toMatchObject({ ok: false, why: "conflicts" });
    expect(git("rev-parse", "HEAD").trim()).toBe(head);
    expect(readFileSync(join(repo, "lines.txt"), "utf8")).toBe("one\nTWO by the user\nthree\nfour\nfive\n");
    git("checkout", "-q", "--", "lines.txt");

    // HEAD moved on under the first commit: the series stops at it, and nothing is left of it.
    writeFileSync(join(repo, "lines.txt"), "one\nTWO committed meanwhile\nthree\nfour\nfive\n");
    git("commit", "-qam", "meanwhile");
    const moved = git("rev-parse", "HEAD").trim();
    expect(await applyResultCommits(repo, series)).toMatchObject({ ok: false, why: "does-not-apply" });
    expect(git("rev-parse", "HEAD").trim()).toBe(moved);
    expect(git("status", "--porcelain")).toBe("");
    git("reset", "-q", "--hard", head);

    expect(await applyResultCommits(repo, series, { check: true })).toEqual({ ok: true, applied: false, commits: 2 });
    expect(git("rev-parse", "HEAD").trim()).toBe(head);
    expect(await applyResultCommits(repo, series)).toEqual({ ok: true, applied: true, commits: 2 });
    expect(git("log", "--format=%s", `${head}..HEAD`).trim().split("\n")).toEqual(["second", "first"]);
    expect(readFileSync(join(repo, "new.txt"), "utf8")).toBe("new\n");
    expect(git("status", "--porcelain")).toBe("");
    expect(worktrees()).toBe(1);
  });
});

describe("applyResultCommits against a crafted series (the executor's bytes)", () => {
  /** One message of a series whose body (message and patch) `git am` decodes from `encoding` before it applies it. */
  function encodedMessage(patch: string, encoding: "base64" | "quoted-printable"): Buffer {
    const body = `an innocent change\n---\n${patch}`;
    const encoded = encoding === "base64" ? Buffer.from(body).toString("base64").replace(/.{76}/g, "$&\n") : body.replace(/^d/gm, "=64").replace(/^\+/gm, "=2B");
    return Buffer.from(
      [
        "From 0123456789012345678901234567890123456789 Mon Sep 17 00:00:00 2001",
        "From: agent <agent@example.com>",
        "Date: Mon, 7 Dec 2026 00:00:00 +0000",
        "Subject: [PATCH] an innocent change",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        `Content-Transfer-Encoding: ${encoding}`,
        "",
        encoded,
        "",
      ].join("\n"),
    );
  }

  it("a series whose patches are MIME-encoded is refused when they change a path the tree ignores, and the ignored file is left as it was", async () => {
    const { repo, git } = repository();
    git("config", "user.name", "the user");
    git("config", "user.email", "user@example.com");
    const head = git("rev-parse", "HEAD").trim();
    writeFileSync(join(repo, ".env"), "SECRET=the user's\n");
    const planted = "diff --git a/.env b/.env\nnew file mode 100644\n--- /dev/null\n+++ b/.env\n@@ -0,0 +1 @@\n+SECRET=the executor's\n";
    for (const encoding of ["base64", "quoted-printable"] as const) {
      for (const check of [true, false]) {
        expect(await applyResultCommits(repo, encodedMessage(planted, encoding), { check })).toMatchObject({ ok: false, why: "unsafe", message: expect.stringContaining('".env"') });
        expect(git("rev-parse", "HEAD").trim()).toBe(head);
        expect(readFileSync(join(repo, ".env"), "utf8")).toBe("SECRET=the user's\n");
        expect(git("worktree", "list").trim().split("\n")).toHaveLength(1);
      }
    }
    // The same encoding of a change the tree does not ignore goes on as the plain series would.
    const fine = "diff --git a/lines.txt b/lines.txt\n--- a/lines.txt\n+++ b/lines.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
    expect(await applyResultCommits(repo, encodedMessage(fine, "base64"))).toEqual({ ok: true, applied: true, commits: 1 });
    expect(readFileSync(join(repo, "lines.txt"), "utf8")).toBe("one\nTWO\nthree\nfour\nfive\n");
  });

  it("a series is read as the mbox format-patch writes, never as a StGit series naming other files of this machine for git am to apply", async () => {
    const { repo, git } = repository();
    git("config", "user.name", "the user");
    git("config", "user.email", "user@example.com");
    const head = git("rev-parse", "HEAD").trim();
    // A patch already on this machine, outside the repository (another checkout's, a download, an artifact written earlier).
    const elsewhere = tempDir("cc-result-elsewhere-");
    cleanups.push(() => elsewhere.remove());
    const planted = join(elsewhere.path, "planted.patch");
    writeFileSync(planted, "From: someone <s@example.com>\nSubject: planted\n\ndiff --git a/lines.txt b/lines.txt\n--- a/lines.txt\n+++ b/lines.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+PLANTED\n three\n");
    // git am reads the series' file in a directory of its own under the system's temporary directory: a name from there reaches the patch.
    const series = `# This series applies on GIT commit ${head}\n${relative(join(tmpdir(), "coderclaw-commits-dir"), planted)}\n`;
    for (const check of [true, false]) {
      expect(await applyResultCommits(repo, Buffer.from(series), { check })).toMatchObject({ ok: false });
      expect(git("rev-parse", "HEAD").trim()).toBe(head);
      expect(readFileSync(join(repo, "lines.txt"), "utf8")).toBe("one\ntwo\nthree\nfour\nfive\n");
      expect(git("worktree", "list").trim().split("\n")).toHaveLength(1);
    }
  });

  it("a worktree left by an apply killed midway (SIGKILL, Ctrl-C) is removed by the next apply, not left registered with its checkout", async () => {
    const { repo, git } = repository();
    git("config", "user.name", "the user");
    git("config", "user.email", "user@example.com");
    const head = git("rev-parse", "HEAD").trim();
    git("checkout", "-qb", "agent");
    writeFileSync(join(repo, "lines.txt"), "one\nTWO by the agent\nthree\nfour\nfive\n");
    git("commit", "-qam", "the agent's");
    const series = join(repo, "..", "commits.mbox");
    writeFileSync(series, git("format-patch", "--stdout", "--binary", "--full-index", "-1"));
    git("checkout", "-q", "-");
    git("branch", "-qD", "agent");
    // The user's own hook, run by git am: it holds the apply where a kill finds it.
    const hook = join(repo, ".git", "hooks", "applypatch-msg");
    const held = join(repo, "..", "held");
    writeFileSync(hook, `#!/bin/sh\ntouch '${held}'\nsleep 60\n`, { mode: 0o755 });
    const index = new URL("../../dist/node/index.js", import.meta.url).href;
    const worktrees = (): string[] => git("worktree", "list", "--porcelain").split("\n").filter((l) => l.startsWith("worktree ")).map((l) => l.slice("worktree ".length));
    const left = new Set<string>();
    // Killed as soon as its worktree is registered (while git worktree add still holds it locked, mostly), then while git am runs.
    for (const killedWhen of [() => worktrees().length > 1, () => existsSync(held)]) {
      const child = spawn(process.execPath, ["--input-type=module", "-e", `import { applyResultCommits } from ${JSON.stringify(index)}; import { readFileSync } from "node:fs"; await applyResultCommits(${JSON.stringify(repo)}, readFileSync(${JSON.stringify(series)}));`], { detached: true, stdio: "ignore" });
      const exited = new Promise((r) => child.once("exit", r));
      const deadline = Date.now() + 30_000;
      while (!killedWhen() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      process.kill(-child.pid!, "SIGKILL");
      await exited;
      for (const path of worktrees().slice(1)) left.add(path);
    }
    expect([...left].filter((path) => existsSync(path)).length).toBeGreaterThan(0);
    rmSync(hook);

    expect(await applyResultCommits(repo, readFileSync(series))).toEqual({ ok: true, applied: true, commits: 1 });
    expect(git("rev-parse", "HEAD~1").trim()).toBe(head);
    expect(worktrees()).toEqual([repo]);
    for (const path of left) expect(existsSync(dirname(path))).toBe(false);
  }, 60_000);
});
