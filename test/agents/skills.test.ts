import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bundledSkillsDir, loadSkills, type SkillDir } from "../../src/agents/skills.js";
import { tempDir } from "./helpers.js";

let dir: { path: string; cleanup: () => void };
let bin: string;
beforeEach(() => {
  dir = tempDir("skills");
  bin = join(dir.path, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "present-tool"), "#!/bin/sh\n");
  chmodSync(join(bin, "present-tool"), 0o755);
});
afterEach(() => dir.cleanup());

function skill(root: string, folder: string, frontmatter: string[], body = "Do the thing.\n"): void {
  mkdirSync(join(root, folder), { recursive: true });
  writeFileSync(join(root, folder, "SKILL.md"), ["---", ...frontmatter, "---", "", body].join("\n"));
}

describe("SKILL.md skills", () => {
  it("loads workspace, then user, then bundled skills, the first found by name winning", () => {
    const ws = join(dir.path, "ws", "skills");
    const user = join(dir.path, "data", "skills");
    skill(ws, "lint", ["name: lint", "description: workspace lint", "version: 2.0.0"]);
    skill(user, "lint", ["name: lint", "description: user lint", "version: 1.0.0"]);
    skill(user, "fmt", ["name: fmt", "description: user fmt", "version: 1.1.0"]);
    const dirs: SkillDir[] = [
      { path: ws, source: "workspace" },
      { path: user, source: "user" },
      { path: join(dir.path, "missing"), source: "bundled" },
    ];
    const skills = loadSkills(dirs, { PATH: bin });
    expect(skills.map((s) => [s.info.name, s.info.description, s.source])).toEqual([
      ["lint", "workspace lint", "workspace"],
      ["fmt", "user fmt", "user"],
    ]);
    expect(skills[0]?.info).toEqual({ id: "lint", name: "lint", description: "workspace lint", version: "2.0.0", enabled: true });
  });

  it("disables a skill whose binary or environment variable is missing, naming it", () => {
    const root = join(dir.path, "skills");
    const requires = (bins: string, env: string) => ["metadata:", "  coderclaw:", "    requires:", `      bins: ${bins}`, `      env: ${env}`];
    skill(root, "a", ["name: a", "description: d", "version: 1.0.0", ...requires("[present-tool]", "[TOKEN_A]")]);
    skill(root, "b", ["name: b", "description: d", "version: 1.0.0", ...requires("[present-tool, absent-tool]", "[]")]);
    skill(root, "c", ["name: c", "description: d", "version: 1.0.0", ...requires("[present-tool]", "[TOKEN_C]")]);
    const skills = loadSkills([{ path: root, source: "workspace" }], { PATH: bin, TOKEN_A: "x" });
    expect(skills.map((s) => [s.info.name, s.info.enabled, s.info.disabledReason])).toEqual([
      ["a", true, undefined],
      ["b", false, "binary not found on PATH: absent-tool"],
      ["c", false, "environment variable not set: TOKEN_C"],
    ]);
  });

  it("checks anyBins and os, and reads upstream's JSON-style metadata", () => {
    const root = join(dir.path, "skills");
    skill(root, "any", ["name: any", "description: d", 'metadata: { "coderclaw": { "requires": { "anyBins": ["absent-tool", "present-tool"] }, "primaryEnv": "X" } }', "user-invocable: true"]);
    skill(root, "none", ["name: none", "description: d", 'metadata: { "coderclaw": { "requires": { "anyBins": ["absent-a", "absent-b"] } } }']);
    skill(root, "mac", ["name: mac", "description: d", 'metadata: { "coderclaw": { "os": ["darwin"] } }']);
    skill(root, "cfg", ["name: cfg", "description: d", 'metadata: { "coderclaw": { "requires": { "config": ["skills.x"] } } }']);
    const byName = new Map(loadSkills([{ path: root, source: "workspace" }], { PATH: bin }).map((s) => [s.info.name, s.info]));
    expect(byName.get("any")).toMatchObject({ enabled: true, version: "0.0.0" });
    expect(byName.get("none")?.disabledReason).toBe("none of these binaries is on PATH: absent-a, absent-b");
    expect(byName.get("mac")?.disabledReason).toBe(`not supported on ${process.platform} (needs darwin)`);
    expect(byName.get("cfg")?.disabledReason).toMatch(/metadata\.coderclaw\.requires\.config: unknown key$/);
  });

  it("lists a malformed SKILL.md as disabled with file, line and key", () => {
    const root = join(dir.path, "skills");
    skill(root, "bad-name", ["name: Bad Name!", "description: d"]);
    skill(root, "no-close", ["name: x"], "");
    mkdirSync(join(root, "no-open"));
    writeFileSync(join(root, "no-open", "SKILL.md"), "# just markdown\n");
    skill(root, "bad-requires", ["name: r", "description: d", "metadata:", "  coderclaw:", "    requires:", "      bins: git"]);
    const byName = new Map(loadSkills([{ path: root, source: "workspace" }], { PATH: bin }).map((s) => [s.info.name, s.info]));
    const file = (folder: string) => join(root, folder, "SKILL.md");
    expect(byName.get("bad-name")?.disabledReason).toMatch(new RegExp(`^${file("bad-name")}:2:7: name: must be 1-64 lowercase`));
    expect(byName.get("bad-requires")?.disabledReason).toMatch(new RegExp(`^${file("bad-requires")}:7:\\d+: metadata.coderclaw.requires.bins:`));
    expect(byName.get("no-open")?.disabledReason).toContain("must start with a '---' line");
    expect(byName.get("no-close")?.disabledReason).toMatch(/frontmatter is not closed|invalid YAML|description/);
    for (const info of byName.values()) expect(info.enabled).toBe(false);
  });

  it("refuses an oversized SKILL.md", () => {
    const root = join(dir.path, "skills");
    skill(root, "huge", ["name: huge", "description: d"], "x".repeat(300 * 1024));
    const [huge] = loadSkills([{ path: root, source: "workspace" }], {});
    expect(huge?.info.enabled).toBe(false);
    expect(huge?.info.disabledReason).toContain("over the limit of 262144");
  });

  it("ships real bundled skills", () => {
    const bundled = bundledSkillsDir();
    expect(bundled).toBeDefined();
    const skills = loadSkills([{ path: bundled ?? "", source: "bundled" }], { PATH: process.env["PATH"] });
    const gitStatus = skills.find((s) => s.info.name === "git-status");
    expect(gitStatus?.info).toMatchObject({ version: "1.0.0", enabled: true });
    const pr = skills.find((s) => s.info.name === "github-pr");
    expect(pr?.info).toMatchObject({ dangerous: true });
    const noGh = loadSkills([{ path: bundled ?? "", source: "bundled" }], { PATH: "/nonexistent" });
    expect(noGh.find((s) => s.info.name === "git-status")?.info.disabledReason).toBe("binary not found on PATH: git");
  });
});
