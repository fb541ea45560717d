import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NO_PROVIDER_REASON } from "../../src/agents/llm.js";
import { createAgentRegistry, defaultConfigFiles, loadAgentRegistry } from "../../src/agents/registry.js";
import { REPOSITORY_PATH_KEY, resolveWorkspace } from "../../src/agents/workspace.js";
import { ConfigError } from "../../src/config/yaml-source.js";
import { type CoderClawError, hasCode } from "../../src/contract/errors.js";
import { makeContext, tempDir } from "./helpers.js";

let dir: { path: string; cleanup: () => void };
let project: string;
let dataDir: string;
beforeEach(() => {
  dir = tempDir("registry");
  project = join(dir.path, "project");
  dataDir = join(dir.path, "data");
  mkdirSync(join(project, ".coderClaw"), { recursive: true });
  mkdirSync(join(project, "skills", "local-skill"), { recursive: true });
  writeFileSync(join(project, "skills", "local-skill", "SKILL.md"), "---\nname: local-skill\ndescription: from the workspace\nversion: 0.1.0\n---\n");
  writeFileSync(
    join(project, ".coderClaw", "runtime.yaml"),
    [
      "agents:",
      "  - id: upper",
      "    name: Upper",
      "    description: Upper-cases its input",
      "    capabilities: [text]",
      "    command: [tr, a-z, A-Z]",
      "    input: stdin",
      "  - id: claude",
      "    name: Claude Code",
      "    description: Anthropic's coding agent",
      "    capabilities: [code-creation]",
      "    command: [claude-not-installed-here, -p, '{input}']",
      "    input: arg",
    ].join("\n"),
  );
});
afterEach(() => dir.cleanup());

describe("agent registry", () => {
  it("lists every agent with its availability and reason, and runs the available ones", async () => {
    const registry = loadAgentRegistry({ dataDir, workspaceDir: project, env: { PATH: process.env["PATH"] } });
    const infos = await registry.describeAgents();
    const byId = new Map(infos.map((info) => [info.id, info]));
    expect(infos.map((i) => i.id)).toEqual([
      "echo",
      "sleep",
      "shell",
      "upper",
      "claude",
      "code-creator",
      "code-reviewer",
      "test-generator",
      "bug-analyzer",
      "refactor-agent",
      "documentation-agent",
      "architecture-advisor",
    ]);
    expect(byId.get("upper")).toMatchObject({ available: true });
    expect(byId.get("shell")).toMatchObject({ available: true, capabilities: ["shell-exec"] });
    expect(byId.get("claude")).toMatchObject({ available: false, unavailableReason: "binary not found on PATH: claude-not-installed-here" });
    expect(byId.get("code-reviewer")).toMatchObject({ available: false, unavailableReason: NO_PROVIDER_REASON });

    const upper = registry.get("upper");
    expect(upper).toBeDefined();
    const result = await upper?.execute(makeContext({ input: "hello mesh" }, dir.path));
    expect(result?.output).toBe("HELLO MESH");
    expect(registry.get("nobody")).toBeUndefined();
  });

  it("lists shell-exec first and dangerous, then workspace and bundled skills", () => {
    const registry = createAgentRegistry({ dataDir, workspaceDir: project, env: { PATH: process.env["PATH"] } });
    const skills = registry.listSkills();
    expect(skills[0]).toMatchObject({ id: "shell-exec", enabled: true, dangerous: true });
    expect(skills.map((s) => s.name)).toEqual(expect.arrayContaining(["local-skill", "git-status", "github-pr"]));
    expect(registry.loadedSkills().find((s) => s.info.name === "local-skill")?.source).toBe("workspace");
  });

  it("takes the LLM provider from the environment", async () => {
    const registry = loadAgentRegistry({
      dataDir,
      workspaceDir: project,
      env: { PATH: process.env["PATH"], CODERCLAW_LLM_BASE_URL: "http://127.0.0.1:9/v1", CODERCLAW_LLM_MODEL: "m" },
    });
    expect(registry.get("code-creator")?.info.model).toBe("m");
  });

  it("refuses a configured agent that reuses a built-in id, naming file and line", () => {
    writeFileSync(
      join(project, ".coderClaw", "team-agents.yaml"),
      ["agents:", "  - id: shell", "    name: S", "    description: d", "    capabilities: [c]", "    command: [sh]", "    input: stdin"].join("\n"),
    );
    let err: unknown;
    try {
      loadAgentRegistry({ dataDir, workspaceDir: project, env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${join(project, ".coderClaw", "team-agents.yaml")}:2:5: agents[0].id: agent id 'shell' is taken by a built-in agent`);
  });

  it("falls back to the runtime.yaml of the CoderClaw home, with team-agents.yaml beside it", () => {
    const home = join(dir.path, "home");
    const bare = join(dir.path, "bare-project");
    mkdirSync(join(home, ".coderClaw"), { recursive: true });
    mkdirSync(bare);
    writeFileSync(
      join(home, ".coderClaw", "team-agents.yaml"),
      ["agents:", "  - id: lister", "    name: L", "    description: d", "    capabilities: [c]", "    command: [ls]", "    input: stdin"].join("\n"),
    );
    writeFileSync(join(home, ".coderClaw", "runtime.yaml"), "llm:\n  baseUrl: http://127.0.0.1:9/v1\n  model: home-model\n");
    const env = { PATH: process.env["PATH"], CODERCLAW_HOME: home };
    expect(defaultConfigFiles(bare, env).map((f) => f.path)).toEqual([
      join(home, ".coderClaw", "runtime.yaml"),
      join(home, ".coderClaw", "team-agents.yaml"),
    ]);
    const registry = loadAgentRegistry({ dataDir, workspaceDir: bare, env });
    expect(registry.get("lister")).toBeDefined();
    expect(registry.get("code-reviewer")?.info.model).toBe("home-model");
  });

  it("accepts extra executors in place of the built-ins and can leave the shell out", () => {
    const registry = createAgentRegistry({ dataDir, builtins: [], shell: false, env: {} });
    expect(registry.list().map((a) => a.info.id)).toHaveLength(7);
  });
});

describe("workspaces", () => {
  it("gives each session its own directory under the data dir", () => {
    expect(resolveWorkspace({ description: "d", input: "i" }, { dataDir: "/data" })).toBe("/data/workspaces/default");
    expect(resolveWorkspace({ description: "d", input: "i", sessionId: "s-1.a_b" }, { dataDir: "/data" })).toBe("/data/workspaces/s-1.a_b");
  });

  it("refuses session ids that could escape", () => {
    for (const sessionId of ["..", "../etc", "a/b", ".hidden", "a..b", "", "x".repeat(129), "a\0b"]) {
      let err: unknown;
      try {
        resolveWorkspace({ description: "d", input: "i", sessionId }, { dataDir: "/data" });
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, "INVALID_INPUT"), sessionId).toBe(true);
      expect((err as CoderClawError).field).toBe("sessionId");
    }
  });

  it("runs in a repository path only where policy allows", () => {
    const request = { description: "d", input: "i", metadata: { [REPOSITORY_PATH_KEY]: "/home/dev/repo/../repo" } };
    const denied = (() => {
      try {
        return resolveWorkspace(request, { dataDir: "/data" });
      } catch (e) {
        return e;
      }
    })();
    expect(hasCode(denied, "PERMISSION_DENIED")).toBe(true);
    expect(resolveWorkspace(request, { dataDir: "/data", allowRepository: (path) => path.startsWith("/home/dev/") })).toBe("/home/dev/repo");
    const relative = { description: "d", input: "i", metadata: { [REPOSITORY_PATH_KEY]: "repo" } };
    expect(() => resolveWorkspace(relative, { dataDir: "/data", allowRepository: () => true })).toThrow(/metadata.repositoryPath: must be an absolute path/);
  });
});
