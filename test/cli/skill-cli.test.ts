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

  it("runs `coderclaw agent publish team-agents.yaml` as written: the agent is listed as running here and offered; a bad file is refused naming file, line and key", { timeout: 60_000 }, async () => {
    const home = tempDir("cc-cli-agent-");
    cleanups.push(() => home.remove());
    const node = await startCli(["start"], home.path, /control socket/);
    cleanups.push(() => node.stop());
    expect((await runCli(["mesh", "create", "--name", "team-registry"], home.path)).code).toBe(0);
    const work = join(home.path, "work");
    mkdirSync(work, { recursive: true });
    const agent = (id: string): string => `agents:\n  - id: ${id}\n    name: Reviewer\n    description: reviews\n    capabilities: [review]\n    command: [cat]\n    input: stdin\n`;
    writeFileSync(join(work, "team-agents.yaml"), agent("reviewer"));

    const published = await runCli(["agent", "publish", "team-agents.yaml"], home.path, 20_000, {}, work);
    expect([published.code, published.stdout], published.stderr).toEqual([0, expect.stringMatching(/^published team\/reviewer@1\.0\.0 \(statement [0-9a-f]{16}\)\n$/)]);
    const again = await runCli(["agent", "publish", "team-agents.yaml"], home.path, 20_000, {}, work);
    expect([again.code, again.stdout]).toEqual([0, "team/reviewer@1.0.0 is published already with this definition\n"]);
    await expect.poll(async () => (await runCli(["agent", "list"], home.path)).stdout, { timeout: 10_000 }).toMatch(/reviewer\s.*team\/reviewer@1\.0\.0.*runs here/);
    const agents = JSON.parse((await runCli(["agents", "--json"], home.path)).stdout) as Array<{ id: string; available: boolean }>;
    expect(agents.find((a) => a.id === "reviewer")).toMatchObject({ available: true });

    writeFileSync(join(work, "team-agents.yaml"), agent("Bad_Id"));
    const bad = await runCli(["agent", "publish", "team-agents.yaml"], home.path, 20_000, {}, work);
    expect([bad.code, bad.stderr]).toEqual([expect.any(Number), expect.stringMatching(/team-agents\.yaml:2:\d+: agents\[0\]\.id: a published agent's id must be lowercase/)]);
    expect(bad.code).not.toBe(0);
  });
});
