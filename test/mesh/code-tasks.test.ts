import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const git = (cwd: string, ...args: string[]): string => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], { cwd }).toString();

/** What the agent does to the code it was sent: edits, deletes, adds a text and a binary file, changes a mode, renames, commits some of it. */
const SCRIPT = [
  "printf 'edited by the agent\\n' >> a.txt",
  "rm b.txt",
  "printf 'new\\n' > src/added.txt",
  "printf '\\000\\001\\002\\377binary' > image.bin",
  "chmod +x run.sh",
  "mv moved.txt src/renamed.txt",
].join(" && ");

/** The submitter's repository: a commit, then unstaged, staged and untracked changes, and an ignored file. */
function makeRepository(dir: string): void {
  git(dir, "init", "-q");
  writeFileSync(join(dir, "a.txt"), "a\n");
  writeFileSync(join(dir, "b.txt"), "b\n");
  writeFileSync(join(dir, "moved.txt"), "a file long enough to be seen as renamed when it moves\n".repeat(4));
  writeFileSync(join(dir, "run.sh"), "echo run\n");
  writeFileSync(join(dir, "data.bin"), Buffer.from([0, 1, 2, 3, 254, 255]));
  writeFileSync(join(dir, ".gitignore"), "*.log\n");
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "lib.txt"), "lib\n");
  git(dir, "add", "-A");
  git(dir, "commit", "-qm", "base");
  writeFileSync(join(dir, "a.txt"), "a, unstaged\n");
  writeFileSync(join(dir, "staged.txt"), "staged\n");
  git(dir, "add", "staged.txt");
  writeFileSync(join(dir, "untracked.txt"), "untracked\n");
  writeFileSync(join(dir, "debug.log"), "ignored, never sent\n");
}

/** Node processes on homes `ha` (founder) and `hb` (a trusted member), stopped after the test. */
async function meshOfTwo(ha: string, hb: string): Promise<{ a: NodeProcess; b: NodeProcess }> {
  const a = await startNodeProcess(ha);
  const b = await startNodeProcess(hb);
  cleanups.push(() => a.stop(), () => b.stop());
  await a.client.admin("mesh.create", { name: "code" });
  const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
  await b.client.admin("mesh.join", { invite });
  return { a, b };
}

describe("tasks that carry code (separate processes, real git repositories)", () => {
  it("the executor works on the submitter's working tree; `task apply` reproduces its final tree exactly", async () => {
    const homes = [tempDir("cc-code-a-"), tempDir("cc-code-b-"), tempDir("cc-code-repo-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb, work] = homes.map((h) => h.path) as [string, string, string];
    const repo = join(work, "repo");
    mkdirSync(repo);
    makeRepository(repo);
    // What the executor's tree should end as: the same script on a copy of what was sent.
    const expected = join(work, "expected");
    cpSync(repo, expected, { recursive: true });
    execFileSync("sh", ["-c", SCRIPT], { cwd: expected });

    const { b } = await meshOfTwo(ha, hb);

    const submitted = await runCli(["task", "submit", SCRIPT, "--agent", "shell", "--repo", repo, "--route", b.deviceId, "--wait", "--json"], ha, 60_000);
    expect(submitted.code, submitted.stderr).toBe(0);
    const task = JSON.parse(submitted.stdout) as { id: string; status: string; placement?: { runsOn?: string } };
    expect(task.status).toBe("completed");
    expect(task.placement?.runsOn).toBe(b.deviceId);

    // A unique prefix names the task as its full id does.
    const diff = await runCli(["task", "diff", task.id.slice(0, 8)], ha, 30_000);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain("deleted file mode 100644");
    expect(diff.stdout).toContain("old mode 100644\nnew mode 100755");
    expect(diff.stdout).toContain("GIT binary patch");
    expect(diff.stdout).toContain("rename to src/renamed.txt");
    expect(diff.stdout).not.toContain("debug.log");

    const check = await runCli(["task", "apply", task.id.slice(0, 10), "--repo", repo, "--check"], ha, 30_000);
    expect(check.code, check.stderr).toBe(0);
    const applied = await runCli(["task", "apply", task.id, "--repo", repo], ha, 30_000);
    expect(applied.code, applied.stderr).toBe(0);
    // The same tree, byte for byte and mode for mode (the ignored file stays out of both).
    const [got, want] = await Promise.all([snapshotDirectory(repo), snapshotDirectory(expected)]);
    expect(got.manifest.entries.map((e) => e.path)).toEqual(want.manifest.entries.map((e) => e.path));
    expect(got.treeId).toBe(want.treeId);
    expect(readFileSync(join(repo, "debug.log"), "utf8")).toBe("ignored, never sent\n");

    // Applying it again conflicts: refused, and nothing changes.
    const again = await runCli(["task", "apply", task.id, "--repo", repo], ha, 30_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("nothing was changed");
    expect((await snapshotDirectory(repo)).treeId).toBe(want.treeId);
  }, 120_000);

  it("with --commits the agent commits in its workspace, and `task apply --commits` makes its commits the submitter's, on top of HEAD", async () => {
    const homes = [tempDir("cc-commits-a-"), tempDir("cc-commits-b-"), tempDir("cc-commits-repo-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb, repo] = homes.map((h) => h.path) as [string, string, string];
    git(repo, "init", "-q");
    // `task apply --commits` commits (git am) as the repository's user.
    git(repo, "config", "user.name", "the user");
    git(repo, "config", "user.email", "user@example.com");
    writeFileSync(join(repo, "a.txt"), "a\n");
    writeFileSync(join(repo, "run.sh"), "echo run\n");
    git(repo, "add", "-A");
    git(repo, "commit", "-qm", "base");
    writeFileSync(join(repo, "notes.txt"), "the user's own untracked file\n");
    const { b } = await meshOfTwo(ha, hb);

    const script = [
      "printf 'one more line\\n' >> a.txt",
      "git commit -qam 'first by the agent'",
      "printf '\\000\\001\\002\\377binary' > image.bin",
      "chmod +x run.sh",
      "git add -A",
      "git commit -qm 'second: a binary file and a mode'",
      "printf 'left uncommitted\\n' > wip.txt",
    ].join(" && ");
    const submitted = await runCli(["task", "submit", script, "--agent", "shell", "--repo", repo, "--commits", "--route", b.deviceId, "--wait", "--json"], ha, 60_000);
    expect(submitted.code, submitted.stderr).toBe(0);
    const task = JSON.parse(submitted.stdout) as { id: string; status: string; output?: string };
    expect(task.status, task.output).toBe("completed");

    const series = await runCli(["task", "diff", task.id, "--commits"], ha, 30_000);
    expect(series.code, series.stderr).toBe(0);
    expect(series.stdout).toContain("Subject: [PATCH 1/2] first by the agent");
    expect(series.stdout).toContain("Subject: [PATCH 2/2] second: a binary file and a mode");
    expect(series.stdout).toContain("GIT binary patch");
    expect(series.stdout).not.toContain("wip.txt");
    const stat = await runCli(["task", "diff", task.id, "--commits", "--stat"], ha, 30_000);
    expect(stat.stdout).toContain("made 2 commit(s)");
    // The patch still holds all the agent changed, committed or not.
    const patch = await runCli(["task", "diff", task.id], ha, 30_000);
    expect(patch.stdout).toContain("+left uncommitted");

    const head = git(repo, "rev-parse", "HEAD").trim();
    const check = await runCli(["task", "apply", task.id, "--commits", "--repo", repo, "--check"], ha, 30_000);
    expect(check.code, check.stderr).toBe(0);
    expect(git(repo, "rev-parse", "HEAD").trim()).toBe(head);
    const applied = await runCli(["task", "apply", task.id, "--commits", "--repo", repo], ha, 30_000);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain("2 commit(s)");
    expect(git(repo, "log", "--format=%an|%s", `${head}..HEAD`).trim().split("\n")).toEqual(["coderclaw agent|second: a binary file and a mode", "coderclaw agent|first by the agent"]);
    expect(git(repo, "rev-parse", "HEAD~2").trim()).toBe(head);
    expect(readFileSync(join(repo, "a.txt"), "utf8")).toBe("a\none more line\n");
    expect(readFileSync(join(repo, "image.bin"))).toEqual(Buffer.concat([Buffer.from([0, 1, 2, 255]), Buffer.from("binary")]));
    expect(git(repo, "ls-files", "-s", "run.sh")).toMatch(/^100755 /);
    expect(readFileSync(join(repo, "notes.txt"), "utf8")).toBe("the user's own untracked file\n");
    expect(git(repo, "worktree", "list").trim().split("\n")).toHaveLength(1);

    // The same commits again do not go onto a HEAD that has them: refused, and nothing moves.
    const tip = git(repo, "rev-parse", "HEAD").trim();
    const again = await runCli(["task", "apply", task.id, "--commits", "--repo", repo], ha, 30_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("nothing was changed");
    expect(git(repo, "rev-parse", "HEAD").trim()).toBe(tip);
    expect(git(repo, "status", "--porcelain").trim()).toBe("?? notes.txt");
  }, 120_000);

  it("the agent's repository is read in its sandbox: alternates pointing into the executor's hidden home bring nothing of it back", async () => {
    const homes = [tempDir("cc-commits-steal-a-"), tempDir("cc-commits-steal-b-"), tempDir("cc-commits-steal-repo-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb, repo] = homes.map((h) => h.path) as [string, string, string];
    writeFileSync(join(repo, "a.txt"), "a\n");
    const { b } = await meshOfTwo(ha, hb);
    // A repository of the executor's user, in the home its sandbox hides.
    const secret = join(hb, "secret");
    mkdirSync(secret);
    git(secret, "init", "-q");
    writeFileSync(join(secret, "key.txt"), "the executor's secret\n");
    const oid = git(secret, "hash-object", "-w", "key.txt").trim();

    // A commit naming the hidden blob, made without reading it (mktree --missing): only a git outside the sandbox could write it into a patch.
    const script = [
      `echo ${secret}/.git/objects > .git/objects/info/alternates`,
      `t=$(printf '100644 blob ${oid}\\tkey.txt\\n' | git mktree --missing)`,
      "c=$(git commit-tree $t -p HEAD -m steal)",
      "git update-ref refs/heads/main $c",
    ].join(" && ");
    const submitted = await runCli(["task", "submit", script, "--agent", "shell", "--repo", repo, "--commits", "--route", b.deviceId, "--wait", "--json"], ha, 60_000);
    const task = JSON.parse(submitted.stdout) as { id: string; status: string; error?: string };
    expect(task.status).toBe("failed");
    expect(task.error).toContain("the agent's commits could not be read");
    expect(submitted.stdout + submitted.stderr).not.toContain("the executor's secret");
  }, 120_000);

  it("a task waiting for its executor outlives a SIGKILL of its submitter, which serves the code after its restart; the executor serves the changes after its own", async () => {
    const homes = [tempDir("cc-code-wait-a-"), tempDir("cc-code-wait-b-"), tempDir("cc-code-wait-repo-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb, repo] = homes.map((h) => h.path) as [string, string, string];
    writeFileSync(join(repo, "kept.txt"), "sent before the crash\n");
    let { a, b } = await meshOfTwo(ha, hb);
    cleanups.push(() => a.stop(), () => b.stop());
    await b.stop();

    // B is away: the task waits for it, and its code is nowhere but in A's working tree and home.
    const submitted = await runCli(["task", "submit", "cat kept.txt && echo made by the agent > made.txt", "--agent", "shell", "--repo", repo, "--route", b.deviceId, "--json"], ha, 30_000);
    expect(submitted.code, submitted.stderr).toBe(0);
    const { id } = JSON.parse(submitted.stdout) as { id: string };
    expect((await a.client.getTaskState(id))?.status).toBe("pending");
    await a.kill();

    a = await startNodeProcess(ha);
    b = await startNodeProcess(hb, ["--bootstrap", a.addr]);
    await eventually(async () => ["completed", "failed"].includes((await a.client.getTaskState(id))?.status ?? ""), 60_000, "the task ended");
    const done = await a.client.getTaskState(id);
    expect(done, JSON.stringify(done)).toMatchObject({ status: "completed" });
    expect(done?.output).toContain("sent before the crash");

    // The changes stay with B until A asks for them: B killed and back, they are still A's to read.
    await b.kill();
    b = await startNodeProcess(hb, ["--bootstrap", a.addr]);
    const diff = await runCli(["task", "diff", id], ha, 30_000);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain("+made by the agent");
  }, 120_000);
});
