import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyResultCommits } from "../../node/index.js";
import { agentCommits, initAgentRepository } from "../../src/workspace/agent-repository.js";
import { helloRepository } from "../helpers/git.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A line of a commit message that reads as the line `git format-patch` opens each message with. */
const SEPARATOR = "From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001";

describe("the agent's repository in a task's workspace", () => {
  it("holds the snapshot in one commit; the agent's commits come back one message each, even one whose body reads as the series' separator", async () => {
    const dir = tempDir("cc-agent-repo-");
    cleanups.push(() => dir.remove());
    // The submitter's repository, and the workspace materialised from it: its files, no .git.
    const home = join(dir.path, "home");
    const git = helloRepository(home);
    git("config", "user.name", "the user");
    git("config", "user.email", "user@example.com");
    const workspace = join(dir.path, "workspace");
    mkdirSync(workspace);
    writeFileSync(join(workspace, "a.txt"), "hello\n");

    const base = await initAgentRepository(workspace, "ab".repeat(32));
    // As the agent commits, with the repository's own identity.
    const agent = (...args: string[]): string => execFileSync("git", args, { cwd: workspace, encoding: "utf8", env: { PATH: process.env.PATH!, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" } });
    expect(agent("log", "--format=%H %an %s")).toBe(`${base} coderclaw ${"coderclaw: the submitted snapshot (tree " + "ab".repeat(32) + ")"}\n`);
    expect(agent("status", "--porcelain")).toBe("");
    writeFileSync(join(workspace, "b.txt"), "by the agent\n");
    agent("add", "b.txt");
    agent("commit", "-qm", `adds b\n\nquoting a series:\n${SEPARATOR}\nand on`);

    const { series, count } = await agentCommits(workspace, base, (argv) => argv);
    expect(count).toBe(1);
    expect(await applyResultCommits(home, series)).toEqual({ ok: true, applied: true, commits: 1 });
    expect(git("log", "-1", "--format=%an|%B")).toBe(`coderclaw agent|adds b\n\nquoting a series:\n${SEPARATOR}\nand on\n\n`);
    expect(git("show", "HEAD:b.txt")).toBe("by the agent\n");
  });

  it("stops making the repository when the task is stopped", async () => {
    const dir = tempDir("cc-agent-repo-stop-");
    cleanups.push(() => dir.remove());
    writeFileSync(join(dir.path, "a.txt"), "a\n");
    const stopped = new AbortController();
    stopped.abort("cancelled");
    await expect(initAgentRepository(dir.path, "ab".repeat(32), stopped.signal)).rejects.toThrow();
    expect(existsSync(join(dir.path, ".git", "HEAD"))).toBe(false);
  });
});
