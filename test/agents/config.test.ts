import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadAgentsConfig, parseAgentsConfig, substitute } from "../../src/config/agents-config.js";
import { ConfigError } from "../../src/config/yaml-source.js";
import { tempDir } from "./helpers.js";

const RUNTIME = { path: "/etc/x/.coderClaw/runtime.yaml", kind: "runtime" } as const;

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("agents configuration", () => {
  let dir: { path: string; cleanup: () => void };
  beforeEach(() => {
    dir = tempDir("config");
  });
  afterEach(() => dir.cleanup());

  it("parses command agents and the llm section, leaving other sections alone", () => {
    const config = parseAgentsConfig(
      [
        "node:",
        "  listen: 127.0.0.1:7000",
        "llm:",
        "  baseUrl: http://127.0.0.1:11434/v1",
        "  model: qwen2.5-coder",
        "  apiKeyEnv: MY_KEY",
        "  probeTimeout: 2s",
        "agents:",
        "  - id: claude",
        "    name: Claude Code",
        "    description: Anthropic's coding agent",
        "    capabilities: [code-creation, code-review]",
        "    command: [claude, -p, '{input}', --append-system-prompt, 'Task: {description}']",
        "    input: arg",
        "    env: [ANTHROPIC_API_KEY]",
        "    timeout: 20m",
        "  - id: aider",
        "    name: Aider",
        "    description: Pair programming",
        "    capabilities: [code-creation]",
        "    command: [aider, --yes, --message-file, /dev/stdin]",
        "    input: stdin",
        "    env: { AIDER_DARK_MODE: 'false' }",
        "    cwd: repo",
        "    timeout: 90",
      ].join("\n"),
      RUNTIME,
    );
    expect(config.llm).toEqual({ baseUrl: "http://127.0.0.1:11434/v1", model: "qwen2.5-coder", apiKeyEnv: "MY_KEY", probeTimeoutMs: 2000 });
    expect(config.agents).toHaveLength(2);
    expect(config.agents[0]).toMatchObject({
      id: "claude",
      command: ["claude", "-p", "{input}", "--append-system-prompt", "Task: {description}"],
      input: "arg",
      env: { pass: ["ANTHROPIC_API_KEY"] },
      timeoutMs: 20 * 60_000,
      source: { file: RUNTIME.path, line: 9, col: 5, key: "agents[0]" },
    });
    expect(config.agents[1]).toMatchObject({ env: { set: { AIDER_DARK_MODE: "false" } }, cwd: "repo", timeoutMs: 90_000 });
  });

  it("names file, line and key for an unknown placeholder", () => {
    const err = configError(() =>
      parseAgentsConfig(
        ["agents:", "  - id: x", "    name: X", "    description: d", "    capabilities: [c]", "    command:", "      - tool", "      - '{foo}'", "    input: stdin"].join("\n"),
        RUNTIME,
      ),
    );
    expect(err.code).toBe("CONFIG");
    expect(err.file).toBe(RUNTIME.path);
    expect(err.line).toBe(8);
    expect(err.key).toBe("agents[0].command[1]");
    expect(err.message).toBe(`${RUNTIME.path}:8:9: agents[0].command[1]: unknown placeholder {foo} (known: {input}, {description})`);
  });

  it.each([
    ["sh -c", "[sh, -c, 'claude -p {input}']", 2],
    ["bash -lc, by its path", "[/bin/bash, -lc, 'echo {description}']", 2],
    ["python3 -c", "[python3, -c, 'print(\"{input}\")']", 2],
    ["node -e", "[node, --no-warnings, -e, 'run(`{input}`)']", 3],
    ["sh -c behind timeout", "[timeout, '60', sh, -c, 'tool {input}']", 4],
    ["python3 -c behind env", "[env, FOO=1, /usr/bin/python3, -c, '{input}']", 4],
    ["sh -c run by find -exec", "[find, ., -exec, sh, -c, 'echo {input}', ';']", 5],
    ["awk's program", "[awk, -F, ',', '{{print \"{input}\"}}']", 3],
    ["the remote command of ssh", "[ssh, -p, '22', builder, 'make {description}']", 4],
    ["php -r", "[php, -r, 'echo \"{input}\";']", 2],
  ])("refuses a placeholder in the code of %s, naming the argument", (_what, command, at) => {
    const err = configError(() => parseAgentsConfig(["agents:", "  - id: x", "    name: X", "    description: d", "    capabilities: [c]", `    command: ${command}`, "    input: arg"].join("\n"), RUNTIME));
    expect(err.key).toBe(`agents[0].command[${at}]`);
    expect(err.message).toMatch(/would run a task's input as that code: pass it as an argument of its own/);
  });

  it.each([
    ["a file awk reads", "[awk, '{{print}}', '{input}']"],
    ["an awk variable's value", "[awk, -v, 'x={input}', '{{print x}}']"],
    ["a program behind timeout", "[timeout, '60', claude, -p, --, '{input}']"],
    ["the destination of ssh, alone", "[ssh, '{input}']"],
  ])("takes a placeholder as %s", (_what, command) => {
    expect(() => parseAgentsConfig(["agents:", "  - id: x", "    name: X", "    description: d", "    capabilities: [c]", `    command: ${command}`, "    input: arg"].join("\n"), RUNTIME)).not.toThrow();
  });

  it("takes a placeholder given to a shell's code as an argument of its own, and literal braces in the code", () => {
    const command = (line: string) => parseAgentsConfig(["agents:", "  - id: x", "    name: X", "    description: d", "    capabilities: [c]", line, "    input: arg"].join("\n"), RUNTIME).agents[0]!.command;
    expect(command(`    command: [sh, -c, 'tool "$1" {{input}}', sh, '{input}']`)).toEqual(["sh", "-c", 'tool "$1" {{input}}', "sh", "{input}"]);
  });

  it("names file, line and key for schema errors", () => {
    const base = ["agents:", "  - id: x", "    name: X", "    description: d", "    capabilities: [c]", "    command: [tool, '{input}']"];
    const badInput = configError(() => parseAgentsConfig([...base, "    input: pipe"].join("\n"), RUNTIME));
    expect(badInput.line).toBe(7);
    expect(badInput.key).toBe("agents[0].input");
    const unknownKey = configError(() => parseAgentsConfig([...base, "    input: arg", "    shell: true"].join("\n"), RUNTIME));
    expect(unknownKey.line).toBe(8);
    expect(unknownKey.key).toBe("agents[0].shell");
    expect(unknownKey.message).toContain("unknown key");
    const missing = configError(() => parseAgentsConfig(base.join("\n"), RUNTIME));
    expect(missing.key).toBe("agents[0].input");
    expect(missing.line).toBe(2);
    const noInputArg = configError(() =>
      parseAgentsConfig([...base.slice(0, 5), "    command: [tool, '{description}']", "    input: arg"].join("\n"), RUNTIME),
    );
    expect(noInputArg.message).toContain("needs an {input} placeholder");
    const relative = configError(() => parseAgentsConfig([...base.slice(0, 5), "    command: [./tool, '{input}']", "    input: arg"].join("\n"), RUNTIME));
    expect(relative.key).toBe("agents[0].command[0]");
    expect(relative.message).toContain("absolute path");
    const badTimeout = configError(() => parseAgentsConfig([...base, "    input: arg", "    timeout: forever"].join("\n"), RUNTIME));
    expect(badTimeout.key).toBe("agents[0].timeout");
    expect(badTimeout.line).toBe(8);
    const badLlm = configError(() => parseAgentsConfig("llm:\n  baseUrl: ftp://x\n", RUNTIME));
    expect(badLlm.key).toBe("llm.baseUrl");
    expect(badLlm.line).toBe(2);
  });

  it("refuses YAML syntax errors, duplicate keys and oversized files with a line", () => {
    const syntax = configError(() => parseAgentsConfig("agents:\n  - id: [unclosed\n", RUNTIME));
    expect(syntax.message).toMatch(/^\/etc\/x\/\.coderClaw\/runtime\.yaml:\d+:\d+: invalid YAML/);
    const dup = configError(() => parseAgentsConfig("llm:\n  model: a\n  model: b\n", RUNTIME));
    expect(dup.line).toBe(3);
    const big = configError(() => parseAgentsConfig(`# ${"x".repeat(1024 * 1024)}`, RUNTIME));
    expect(big.message).toContain("over the limit");
  });

  it("team-agents.yaml takes agents only; ids are unique across files; missing files are skipped", () => {
    const runtime = join(dir.path, "runtime.yaml");
    const team = join(dir.path, "team-agents.yaml");
    const agent = (id: string) => [`  - id: ${id}`, "    name: N", "    description: d", "    capabilities: [c]", "    command: [cat]", "    input: stdin"];
    writeFileSync(runtime, ["agents:", ...agent("one")].join("\n"));
    writeFileSync(team, ["agents:", ...agent("two"), ...agent("one")].join("\n"));
    const err = configError(() =>
      loadAgentsConfig([
        { path: runtime, kind: "runtime" },
        { path: team, kind: "team" },
      ]),
    );
    expect(err.message).toBe(`${team}:8:5: agents[1].id: agent id 'one' is already declared at ${runtime}:2`);
    writeFileSync(team, ["agents:", ...agent("two")].join("\n"));
    const ok = loadAgentsConfig([
      { path: runtime, kind: "runtime" },
      { path: team, kind: "team" },
      { path: join(dir.path, "absent.yaml"), kind: "team" },
    ]);
    expect(ok.agents.map((a) => a.id)).toEqual(["one", "two"]);
    writeFileSync(team, "llm:\n  model: x\n");
    expect(configError(() => loadAgentsConfig([{ path: team, kind: "team" }])).key).toBe("llm");
  });

  it("substitutes placeholders with brace escapes", () => {
    expect(substitute("{{literal}} {input} / {description}", { input: "IN", description: "DESC" })).toBe("{literal} IN / DESC");
    expect(substitute("{input}", { input: "{description}", description: "no" })).toBe("{description}");
  });
});

describe("docs/agents.md", () => {
  it("has YAML examples that parse, for at least three real coding-agent CLIs", () => {
    const docs = fileURLToPath(new URL("../../docs/agents.md", import.meta.url));
    const blocks = [...readFileSync(docs, "utf8").matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
    const programs: string[] = [];
    for (const block of blocks) {
      const config = parseAgentsConfig(block, { path: docs, kind: "runtime" });
      programs.push(...config.agents.map((a) => a.command[0]));
    }
    expect(programs).toEqual(expect.arrayContaining(["claude", "codex", "aider", "gemini"]));
  });
});
