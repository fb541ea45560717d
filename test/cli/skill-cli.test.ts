import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

describe("coderclaw skill", () => {
  it("runs the issue's commands as written: publish a folder, install it from the mesh named as registry, list, remove; bad input refused with exit 2", { timeout: 60_000 }, async () => {
    const home = tempDir("cc-cli-skill-");
    cleanups.push(() => home.remove());
    const node = await startCli(["start"], home.path, /control socket/);
    cleanups.push(() => node.stop());
    expect((await runCli(["mesh", "create", "--name", "team-registry"], home.path)).code).toBe(0);
    const folder = join(home.path, "work", "skills", "security-scanner");
    mkdirSync(folder, { recursive: true });
    const skillMd = "---\nname: security-scanner\ndescription: finds secrets\n---\nScan the diff.\n";
    writeFileSync(join(folder, "SKILL.md"), skillMd);

    const published = await runCli(["skill", "publish", folder, "--as", "team/security-scanner", "--version", "1.2.0"], home.path);
    expect(published.code, published.stderr).toBe(0);
    expect(published.stdout).toMatch(/published team\/security-scanner@1\.2\.0: tree [0-9a-f]{64}, 1 files/);
    const wrongMesh = await runCli(["skill", "install", "team/security-scanner", "--registry", "elsewhere"], home.path);
    expect([wrongMesh.code, wrongMesh.stderr]).toEqual([2, expect.stringMatching(/"elsewhere" is neither this node's mesh/)]);
    const installed = await runCli(["skill", "install", "team/security-scanner", "--registry", "team-registry"], home.path);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/installed team\/security-scanner@1\.2\.0/);
    expect(readFileSync(join(home.path, "skills", "team.security-scanner", "SKILL.md"), "utf8")).toBe(skillMd);
    const skills = await runCli(["skills", "--json"], home.path);
    expect(skills.stdout).toMatch(/"name": "security-scanner"/);

    const list = JSON.parse((await runCli(["skill", "list", "--json"], home.path)).stdout) as { installed: Array<{ name: string; version: string; outdated: boolean }> };
    expect(list.installed).toEqual([expect.objectContaining({ name: "team/security-scanner", version: "1.2.0", outdated: false })]);
    const updated = await runCli(["skill", "update"], home.path);
    expect([updated.code, updated.stdout]).toEqual([0, "team/security-scanner@1.2.0 is the newest * allows\n"]);
    const noMatch = await runCli(["skill", "install", "team/security-scanner@^2.0.0"], home.path);
    expect([noMatch.code, noMatch.stderr]).toEqual([expect.any(Number), expect.stringMatching(/no version of team\/security-scanner matches \^2\.0\.0; published: 1\.2\.0/)]);
    const badName = await runCli(["skill", "publish", folder, "--as", "../evil", "--version", "1.0.0"], home.path);
    expect([badName.code, badName.stderr]).toEqual([2, expect.stringMatching(/must be <team>\/<name>/)]);
    const yanked = await runCli(["skill", "yank", "team/security-scanner@1.2.0", "--reason", "leaks tokens"], home.path);
    expect([yanked.code, yanked.stdout]).toEqual([0, expect.stringMatching(/^yanked team\/security-scanner@1\.2\.0/)]);
    expect((await runCli(["skill", "list"], home.path)).stdout).toMatch(/team\/security-scanner.*1\.2\.0.*\(all yanked\).*installed, yanked/);
    const noVersion = await runCli(["skill", "yank", "team/security-scanner", "--reason", "x"], home.path);
    expect([noVersion.code, noVersion.stderr]).toEqual([2, expect.stringMatching(/names no version/)]);
    const removed = await runCli(["skill", "remove", "team/security-scanner"], home.path);
    expect([removed.code, removed.stdout]).toEqual([0, "removed team/security-scanner@1.2.0\n"]);
  });
});
