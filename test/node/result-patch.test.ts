import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyResultPatch, writeResultArtifacts } from "../../node/index.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function repository(): { repo: string; git: (...args: string[]) => string } {
  const dir = tempDir("cc-result-patch-");
  cleanups.push(() => dir.remove());
  const repo = join(dir.path, "repo");
  mkdirSync(repo);
  const git = (...args: string[]): string => execFileSync("git", ["-c", "user.email=t@t", "-c", "user.name=t", ...args], { cwd: repo, encoding: "utf8" });
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

  it("write artifacts all or none", async () => {
    const dir = tempDir("cc-result-artifacts-");
    cleanups.push(() => dir.remove());
    const out = join(dir.path, "out");
    const bytes = (text: string): Uint8Array => Buffer.from(text);
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("ok") }, { path: "../escape.txt", bytes: bytes("no") }])).toMatch(/escape\.txt/);
    expect(() => readFileSync(join(out, "a", "ok.txt"))).toThrow();
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("ok") }])).toBeUndefined();
    expect(readFileSync(join(out, "a", "ok.txt"), "utf8")).toBe("ok");
    expect(await writeResultArtifacts(out, [{ path: "a/ok.txt", bytes: bytes("again") }])).toMatch(/exists already/);
    expect(readFileSync(join(out, "a", "ok.txt"), "utf8")).toBe("ok");
  });
});
