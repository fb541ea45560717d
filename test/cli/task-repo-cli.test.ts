import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { deviceIdentityFromSeed } from "../../identity/device.js";
import { fromBase64Url } from "../../identity/bytes.js";
import { readTreeGrant } from "../../node/workspaces/tree-grants.js";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";
import { helloRepository } from "../helpers/git.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

describe("the README's example: a task on the user's repository, from the CLI", () => {
  it("submit --repo --wait runs on a copy of the tree, `task diff` shows what changed and `task apply` brings it onto the tree", { timeout: 90_000 }, async () => {
    const dir = tempDir("cc-cli-repo-");
    cleanups.push(() => dir.remove());
    const h = join(dir.path, "home");
    const repo = join(dir.path, "repo");
    helloRepository(repo);
    writeFileSync(join(repo, "b.txt"), "untracked\n");
    const node = await startCli(["start"], h, /control socket/);
    cleanups.push(() => node.stop());

    const sub = await runCli(["task", "submit", "echo changed >> a.txt && rm b.txt && echo new > c.txt", "--agent", "shell", "--repo", repo, "--wait", "--json"], h, 60_000);
    expect(sub.code, sub.stderr).toBe(0);
    const task = JSON.parse(sub.stdout) as { id: string; status: string };
    expect(task.status).toBe("completed");
    // The agent ran on a copy: the user's tree is as it was.
    expect(readFileSync(join(repo, "a.txt"), "utf8")).toBe("hello\n");
    expect(existsSync(join(repo, "c.txt"))).toBe(false);

    const diff = await runCli(["task", "diff", task.id], h);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain("+changed");
    expect(diff.stdout).toMatch(/deleted file mode 100644[\s\S]*-untracked/);
    expect(diff.stdout).toMatch(/new file mode 100644[\s\S]*\+new/);

    // `task grant`: a token letting another device fetch the result from any member holding it; `--grant` and `--from` are taken by
    // `task diff` (this node holds the result, so nothing is fetched), and a token that is none is refused at the edge.
    const other = deviceIdentityFromSeed(randomBytes(32)).peerId;
    const granted = await runCli(["task", "grant", task.id.slice(0, 12), "--to", other, "--for", "2h", "--json"], h);
    expect(granted.code, granted.stderr).toBe(0);
    const token = JSON.parse(granted.stdout) as { grant: string; tree: string; grantee: string; expires: string };
    expect(readTreeGrant(fromBase64Url(token.grant)!)).toMatchObject({ tree: token.tree, grantee: other });
    expect(Date.parse(token.expires) - Date.now()).toBeGreaterThan(3600_000);
    expect((await runCli(["task", "grant", task.id, "--to", other, "--for", "forever"], h)).code).toBe(2);
    const notDevice = await runCli(["task", "grant", task.id, "--to", "12D3KooWAbc"], h);
    expect(notDevice.code).toBe(2);
    expect(notDevice.stderr).toMatch(/grantee.*must be a device id/);
    const viaGrant = await runCli(["task", "diff", task.id, "--grant", token.grant, "--from", other], h);
    expect(viaGrant.code, viaGrant.stderr).toBe(0);
    expect(viaGrant.stdout).toBe(diff.stdout);
    const badToken = await runCli(["task", "diff", task.id, "--grant", "not a token!"], h);
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toMatch(/grant/);

    const apply = await runCli(["task", "apply", task.id, "--repo", repo], h, 30_000);
    if (apply.code !== 0) throw new Error(apply.stderr);
    expect(readFileSync(join(repo, "a.txt"), "utf8")).toBe("hello\nchanged\n");
    expect(readFileSync(join(repo, "c.txt"), "utf8")).toBe("new\n");
    expect(existsSync(join(repo, "b.txt"))).toBe(false);

    // `task clean`: results younger than asked stay; then this task's result and every blob nothing holds go.
    const young = await runCli(["task", "clean", "--older-than", "1d", "--json"], h);
    expect(young.code, young.stderr).toBe(0);
    expect(JSON.parse(young.stdout)).toMatchObject({ released: [] });
    expect((await runCli(["task", "clean", "--older-than", "forever"], h)).code).toBe(2);
    const cleaned = await runCli(["task", "clean", task.id.slice(0, 12), "--json"], h);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    const freed = JSON.parse(cleaned.stdout) as { released: string[]; removed: number; freedBytes: number };
    expect(freed.released).toEqual([task.id]);
    expect(freed.removed).toBeGreaterThan(0);
    const gone = await runCli(["task", "diff", task.id], h);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/result is no longer kept on this node \(released by `coderclaw task clean`/);
  });

  it("a result larger than a line of the node's control socket (4 MiB) comes back whole: `task diff`, `task apply`, `task artifacts`", { timeout: 90_000 }, async () => {
    const dir = tempDir("cc-cli-big-result-");
    cleanups.push(() => dir.remove());
    const h = join(dir.path, "home");
    const repo = join(dir.path, "repo");
    helloRepository(repo);
    // Bytes that do not compress: the patch's binary hunk is as large as the file, and so is the artifact (3 MiB: 4 MiB in base64, past a line).
    const seed = randomBytes(3 * 1024 * 1024);
    writeFileSync(join(repo, "seed.bin"), seed);
    const node = await startCli(["start", "--http", "127.0.0.1:0"], h, /control socket/);
    cleanups.push(() => node.stop());

    const sub = await runCli(["task", "submit", "cp seed.bin big.bin && mkdir out && cp seed.bin out/copy.bin", "--agent", "shell", "--repo", repo, "--artifacts", "out/**", "--wait", "--json"], h, 60_000);
    expect(sub.code, sub.stderr).toBe(0);
    const task = JSON.parse(sub.stdout) as { id: string };
    const stat = await runCli(["task", "diff", task.id, "--stat"], h);
    expect(stat.code, stat.stderr).toBe(0);
    // big.bin and out/copy.bin, new files.
    expect(stat.stdout).toMatch(/^2 added, 0 modified, 0 deleted \((\d+) bytes of patch\)/);
    expect(Number(/\((\d+) bytes/.exec(stat.stdout)![1])).toBeGreaterThan(6 * 1024 * 1024);
    const apply = await runCli(["task", "apply", task.id, "--repo", repo], h, 30_000);
    expect(apply.code, apply.stderr).toBe(0);
    expect(readFileSync(join(repo, "big.bin")).equals(seed)).toBe(true);
    const out = join(dir.path, "artifacts");
    const artifacts = await runCli(["task", "artifacts", task.id, "--out", out], h);
    expect(artifacts.code, artifacts.stderr).toBe(0);
    expect(readFileSync(join(out, "out", "copy.bin")).equals(seed)).toBe(true);

    // The same through the node's HTTP API, whose routes send a result on a blob at a time.
    const server = ["--server", /http (http:\/\/\S+)/.exec(node.output())![1]!, "--token", (await runCli(["session", "create"], h)).stdout.trim()];
    const overHttp = join(dir.path, "over-http");
    const fetched = await runCli([...server, "task", "artifacts", task.id, "--out", overHttp], h);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(join(overHttp, "out", "copy.bin")).equals(seed)).toBe(true);
    const httpStat = await runCli([...server, "task", "diff", task.id, "--stat"], h);
    expect(httpStat.code, httpStat.stderr).toBe(0);
    expect(httpStat.stdout).toBe(stat.stdout);
  });
});
