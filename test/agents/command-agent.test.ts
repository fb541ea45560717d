import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCommandAgent } from "../../src/agents/command-agent.js";
import { ExecutionFailedError } from "../../src/agents/errors.js";
import { DEFAULT_BWRAP } from "../../src/agents/sandbox.js";
import { parseAgentsConfig, type CommandAgentConfig } from "../../src/config/agents-config.js";
import { hasCode } from "../../src/contract/errors.js";
import { makeContext, tempDir } from "./helpers.js";

let dir: { path: string; cleanup: () => void };
let bin: string;
beforeEach(() => {
  dir = tempDir("command");
  bin = join(dir.path, "bin");
  mkdirSync(bin);
  mkdirSync(join(dir.path, "ws"));
  // A stand-in coding-agent CLI: a real executable that shows what it received.
  writeFileSync(
    join(bin, "fake-agent"),
    [
      "#!/bin/sh",
      'for a in "$@"; do echo "arg=$a"; done',
      'if [ "$1" = "--stdin" ]; then while IFS= read -r line; do echo "stdin=$line"; done; fi',
      'echo "cwd=$(pwd)"',
      'echo "token=${AGENT_TOKEN:-unset} secret=${NODE_SECRET:-unset} mode=${MODE:-unset}"',
      'if [ "$1" = "--fail" ]; then echo "quota exceeded" >&2; exit 7; fi',
    ].join("\n"),
  );
  chmodSync(join(bin, "fake-agent"), 0o755);
  writeFileSync(join(bin, "not-executable"), "#!/bin/sh\n");
});
afterEach(() => dir.cleanup());

function agentConfig(yamlLines: string[]): CommandAgentConfig {
  const text = ["agents:", "  - id: fake", "    name: Fake", "    description: d", "    capabilities: [code-creation]", ...yamlLines].join("\n");
  const agent = parseAgentsConfig(text, { path: "runtime.yaml", kind: "runtime" }).agents[0];
  if (agent === undefined) throw new Error("no agent parsed");
  return agent;
}

describe("command agents", () => {
  it("are available only when the binary is an executable on the agent's PATH", async () => {
    const env = { PATH: `/nonexistent:${bin}` };
    const found = createCommandAgent(agentConfig(["    command: [fake-agent, '{input}']", "    input: arg"]), { env });
    expect(await found.availability()).toEqual({ available: true });
    const missing = createCommandAgent(agentConfig(["    command: [claude-nowhere, -p, '{input}']", "    input: arg"]), { env });
    expect(await missing.availability()).toEqual({ available: false, reason: "binary not found on PATH: claude-nowhere" });
    const notExec = createCommandAgent(agentConfig(["    command: [not-executable, '{input}']", "    input: arg"]), { env });
    expect(await notExec.availability()).toEqual({ available: false, reason: "binary not found on PATH: not-executable" });
    const err = await missing.execute(makeContext({ input: "x" }, dir.path)).catch((e: unknown) => e);
    expect(hasCode(err, "AGENT_UNAVAILABLE")).toBe(true);
    expect((err as Error).message).toBe("agent fake: binary not found on PATH: claude-nowhere");
  });

  it("substitutes {input} and {description} as single arguments, without a shell", async () => {
    const agent = createCommandAgent(agentConfig(["    command: [fake-agent, -p, '{input}', '--desc={description}']", "    input: arg"]), {
      env: { PATH: bin },
    });
    const ctx = makeContext({ input: "fix it; rm -rf / $(whoami)", description: "Bug 12" }, join(dir.path, "ws"));
    const result = await agent.execute(ctx);
    expect(result.output).toContain("arg=fix it; rm -rf / $(whoami)\n");
    expect(result.output).toContain("arg=--desc=Bug 12\n");
    expect(result.output).toContain(`cwd=${join(dir.path, "ws")}\n`);
    expect(ctx.outputs).toContain("arg=-p\n");
  });

  it("refuses words that would be an option where the command gives them as an operand, and runs nothing", async () => {
    // fake-agent reads its input from stdin when its first argument is --stdin: an input of "--stdin" would change what the agent does.
    const bare = createCommandAgent(agentConfig(["    command: [fake-agent, '{input}', 'about {description}']", "    input: arg"]), { env: { PATH: bin } });
    const ctx = makeContext({ input: "--stdin" }, join(dir.path, "ws"));
    const err = await bare.execute(ctx).catch((e: unknown) => e);
    expect(hasCode(err, "INVALID_INPUT")).toBe(true);
    expect((err as Error).message).toBe(`input: starts with "-", which fake-agent would read as an option where the agent's command gives it an operand (argument 1): reword it, or have the agent's command give it as an option's value (--message={input}) or after "--"`);
    expect(ctx.outputs.join("")).not.toContain("arg=");
    const described = await bare.execute(makeContext({ input: "fix", description: "-x" }, join(dir.path, "ws"))).catch((e: unknown) => e);
    expect(described).not.toBeInstanceOf(Error);
    const onlyDescription = createCommandAgent(agentConfig(["    command: [fake-agent, fix, '{description}']", "    input: stdin"]), { env: { PATH: bin } });
    expect((await onlyDescription.execute(makeContext({ input: "", description: "--version" }, join(dir.path, "ws"))).catch((e: unknown) => e) as Error).message).toMatch(/^description: starts with "-"/);
    // After "--", or as an option's own value, the same words are one argument of the agent's, as asked.
    const ended = createCommandAgent(agentConfig(["    command: [fake-agent, --, '{input}']", "    input: arg"]), { env: { PATH: bin } });
    expect((await ended.execute(makeContext({ input: "--stdin" }, join(dir.path, "ws")))).output).toContain("arg=--\narg=--stdin\n");
    const valued = createCommandAgent(agentConfig(["    command: [fake-agent, '--message={input}']", "    input: arg"]), { env: { PATH: bin } });
    expect((await valued.execute(makeContext({ input: "--stdin" }, join(dir.path, "ws")))).output).toContain("arg=--message=--stdin\n");
  });

  it("writes the input to stdin and runs in a cwd relative to the workspace", async () => {
    mkdirSync(join(dir.path, "ws", "repo"));
    const agent = createCommandAgent(agentConfig(["    command: [fake-agent, --stdin]", "    input: stdin", "    cwd: repo"]), {
      env: { PATH: bin },
    });
    const result = await agent.execute(makeContext({ input: "line one\nline two\n" }, join(dir.path, "ws")));
    expect(result.output).toContain("stdin=line one\nstdin=line two\n");
    expect(result.output).toContain(`cwd=${join(dir.path, "ws", "repo")}\n`);
  });

  it("starts in its configured cwd inside the sandbox of work from another device", async () => {
    const ws = join(dir.path, "ws");
    mkdirSync(join(ws, "repo"));
    // Inside the workspace: the sandbox hides the rest of the temp directory.
    mkdirSync(join(ws, "bin"));
    writeFileSync(join(ws, "bin", "where"), '#!/bin/sh\necho "cwd=$(pwd)"\n', { mode: 0o755 });
    const agent = createCommandAgent(agentConfig(["    command: [where]", "    input: stdin", "    cwd: repo"]), { env: { PATH: join(ws, "bin") } });
    const ctx = { ...makeContext({ input: "x" }, ws), sandbox: { bwrap: DEFAULT_BWRAP, workspace: ws, hide: [] } };
    expect((await agent.execute(ctx)).output).toBe(`cwd=${join(ws, "repo")}\n`);
  });

  it("passes only the variables the config names", async () => {
    const nodeEnv = { PATH: bin, AGENT_TOKEN: "tok", NODE_SECRET: "s3cret" };
    const passing = createCommandAgent(agentConfig(["    command: [fake-agent, '{input}']", "    input: arg", "    env: [AGENT_TOKEN]"]), { env: nodeEnv });
    const out = (await passing.execute(makeContext({ input: "x" }, dir.path))).output;
    expect(out).toContain("token=tok secret=unset");
    const setting = createCommandAgent(agentConfig(["    command: [fake-agent, '{input}']", "    input: arg", "    env: { MODE: ci }"]), { env: nodeEnv });
    expect((await setting.execute(makeContext({ input: "x" }, dir.path))).output).toContain("token=unset secret=unset mode=ci");
  });

  it("fails with the exit code and stderr tail", async () => {
    const agent = createCommandAgent(agentConfig(["    command: [fake-agent, --fail, '{input}']", "    input: arg"]), { env: { PATH: bin } });
    const err = await agent.execute(makeContext({ input: "x" }, dir.path)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionFailedError);
    expect((err as ExecutionFailedError).exitCode).toBe(7);
    expect((err as Error).message).toBe("fake-agent exited with code 7; stderr ends with:\nquota exceeded");
  });

  it("honours the configured timeout", async () => {
    const agent = createCommandAgent(agentConfig(["    command: [sleep, '{input}']", "    input: arg", "    timeout: 200ms"]), {
      env: { PATH: process.env["PATH"] },
      killGraceMs: 100,
    });
    expect(agent.timeoutMs).toBe(200);
    const err = await agent.execute(makeContext({ input: "30" }, dir.path)).catch((e: unknown) => e);
    expect(hasCode(err, "TIMEOUT")).toBe(true);
  });
});
