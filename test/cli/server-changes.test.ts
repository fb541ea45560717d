import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";
import { helloRepository } from "../helpers/git.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

/** A git repository with one commit of `a.txt`. */
function repository(dir: string): string {
  helloRepository(dir);
  return dir;
}

describe("task submit --repo and task diff|apply|artifacts with --server", () => {
  it("read a task's changes over the node's HTTP API, from a home with no node: the patch, its counts, the artifacts, and apply onto another tree; send that machine's own tree with a task, and apply its changes there", { timeout: 90_000 }, async () => {
    const dir = tempDir("cc-server-changes-");
    cleanups.push(() => dir.remove());
    const h = join(dir.path, "home");
    const repo = repository(join(dir.path, "repo"));
    const node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], h, /control socket/);
    cleanups.push(() => node.stop());
    const url = /http (http:\/\/\S+)/.exec(node.output())![1]!;
    const token = (await runCli(["session", "create"], h)).stdout.trim();
    const server = ["--server", url, "--token", token];

    const sub = await runCli(["task", "submit", "echo changed >> a.txt && echo new > c.txt && mkdir -p out && echo report > out/r.txt", "--agent", "shell", "--repo", repo, "--artifacts", "out/**", "--wait", "--json"], h, 60_000);
    expect(sub.code, sub.stderr).toBe(0);
    const task = JSON.parse(sub.stdout) as { id: string; status: string };
    expect(task.status).toBe("completed");

    // Another machine: no node, only the server and a token.
    const elsewhere = join(dir.path, "elsewhere");
    mkdirSync(elsewhere);
    const diff = await runCli([...server, "task", "diff", task.id], elsewhere);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain("+changed");
    expect(diff.stdout).toMatch(/new file mode 100644[\s\S]*\+new/);
    // Submitted without --commits: the node on this machine and --server end the same way, saying why.
    const noCommits = [await runCli(["task", "diff", task.id, "--commits"], h), await runCli([...server, "task", "diff", task.id, "--commits"], elsewhere)];
    for (const answer of noCommits) expect(answer.stderr).toMatch(/was not submitted with (--)?commits/);
    expect(noCommits[0]!.code).not.toBe(0);
    expect(noCommits[1]!.code).toBe(noCommits[0]!.code);
    const stat = await runCli([...server, "task", "diff", task.id, "--stat"], elsewhere);
    expect(stat.stdout).toMatch(/^2 added, 1 modified, 0 deleted \(\d+ bytes of patch\)$/m);

    const artifacts = join(dir.path, "got");
    const got = await runCli([...server, "task", "artifacts", task.id, "--out", artifacts], elsewhere);
    expect(got.code, got.stderr).toBe(0);
    expect(readFileSync(join(artifacts, "out", "r.txt"), "utf8")).toBe("report\n");

    // A grant token goes to the node as `?grant=` (the node holds the result: nothing is fetched); one that is none is refused,
    // and `--from` (the node's own choice of holders) is refused with --server.
    const grant = JSON.parse((await runCli(["task", "grant", task.id, "--to", JSON.parse((await runCli(["id", "--json"], h)).stdout).deviceId, "--json"], h)).stdout) as { grant: string };
    const withGrant = await runCli([...server, "task", "diff", task.id, "--grant", grant.grant], elsewhere);
    expect(withGrant.code, withGrant.stderr).toBe(0);
    expect(withGrant.stdout).toBe(diff.stdout);
    expect((await runCli([...server, "task", "diff", task.id, "--grant", "not a token"], elsewhere)).code).toBe(2);
    const from = await runCli([...server, "task", "diff", task.id, "--from", "12D3KooWAbc"], elsewhere);
    expect(from.code).toBe(2);
    expect(from.stderr).toMatch(/--from is for the node on this machine/);

    const other = repository(join(dir.path, "other"));
    const apply = await runCli([...server, "task", "apply", task.id, "--repo", other], elsewhere, 30_000);
    expect(apply.code, apply.stderr).toBe(0);
    expect(readFileSync(join(other, "a.txt"), "utf8")).toBe("hello\nchanged\n");
    expect(existsSync(join(other, "c.txt"))).toBe(true);

    // That machine sends its own code with a task: its working tree (a commit and an uncommitted edit) goes over HTTP,
    // the node reads none of its files, and the change comes back onto it.
    const mine = repository(join(dir.path, "mine"));
    writeFileSync(join(mine, "a.txt"), "hello\nmine, not committed\n");
    const sent = await runCli([...server, "task", "submit", "cat a.txt > seen.txt && echo done >> a.txt", "--agent", "shell", "--repo", mine, "--wait", "--json"], elsewhere, 60_000);
    expect(sent.code, sent.stderr).toBe(0);
    const carried = JSON.parse(sent.stdout) as { id: string; status: string };
    expect(carried.status).toBe("completed");
    const back = await runCli([...server, "task", "apply", carried.id, "--repo", mine], elsewhere, 30_000);
    expect(back.code, back.stderr).toBe(0);
    expect(readFileSync(join(mine, "a.txt"), "utf8")).toBe("hello\nmine, not committed\ndone\n");
    expect(readFileSync(join(mine, "seen.txt"), "utf8")).toBe("hello\nmine, not committed\n");

    const badToken = await runCli(["--server", url, "--token", "not-a-token", "task", "diff", task.id], elsewhere);
    expect(badToken.code).not.toBe(0);
    expect(badToken.stdout).toBe("");
  });
});
