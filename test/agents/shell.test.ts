import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CoderClawError, hasCode } from "../../src/contract/errors.js";
import { ExecutionFailedError, abortError } from "../../src/agents/errors.js";
import { SHELL_EXEC_SKILL, createShellAgent, taskTimeout } from "../../src/agents/shell.js";
import { makeContext, pidAlive, tempDir, waitFor } from "./helpers.js";

let dir: { path: string; cleanup: () => void };
beforeEach(() => {
  dir = tempDir("shell");
});
afterEach(() => dir.cleanup());

describe("shell agent (shell-exec)", () => {
  it("is declared dangerous and available where /bin/sh exists", async () => {
    expect(SHELL_EXEC_SKILL.dangerous).toBe(true);
    expect(await createShellAgent().availability()).toEqual({ available: true });
    expect(await createShellAgent({ shell: "/no/such/shell" }).availability()).toEqual({
      available: false,
      reason: "shell not found: /no/such/shell",
    });
  });

  it("streams stdout and stderr lines and returns stdout on exit 0, in the workspace", async () => {
    const ctx = makeContext({ input: "echo one; echo two >&2; printf 'three'; pwd > where.txt" }, dir.path);
    const result = await createShellAgent().execute(ctx);
    expect(result.output).toBe("one\nthree");
    expect(ctx.outputs).toContain("one\n");
    expect(ctx.outputs).toContain("[stderr] two\n");
    expect(ctx.outputs).toContain("three\n");
    expect(readFileSync(join(dir.path, "where.txt"), "utf8").trim()).toBe(dir.path);
    expect(result.data).toMatchObject({ exitCode: 0, cutBytes: 0 });
  });

  it("fails with the exit code and the tail of stderr on a non-zero exit", async () => {
    const ctx = makeContext({ input: "echo first >&2; echo 'the real problem' >&2; exit 3" }, dir.path);
    const err = await createShellAgent().execute(ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionFailedError);
    const failure = err as ExecutionFailedError;
    expect(failure.exitCode).toBe(3);
    expect(failure.message).toContain("exited with code 3");
    expect(failure.message).toContain("the real problem");
  });

  it("refuses an empty command line naming the field", async () => {
    const err = await createShellAgent().execute(makeContext({ input: "  " }, dir.path)).catch((e: unknown) => e);
    expect(hasCode(err, "INVALID_INPUT")).toBe(true);
    expect((err as CoderClawError).field).toBe("input");
  });

  it("cancel kills the whole process tree, grandchildren included", async () => {
    const ctx = makeContext({ input: "sleep 30 & echo $!; wait" }, dir.path);
    const agent = createShellAgent({ killGraceMs: 500 });
    const running = agent.execute(ctx).catch((e: unknown) => e);
    expect(await waitFor(() => ctx.outputs.length > 0, 5_000)).toBe(true);
    const grandchild = Number(ctx.outputs[0]);
    expect(Number.isInteger(grandchild) && grandchild > 0).toBe(true);
    expect(pidAlive(grandchild)).toBe(true);
    ctx.controller.abort("user asked");
    const err = await running;
    expect(hasCode(err, "CANCELLED")).toBe(true);
    expect((err as Error).message).toContain("user asked");
    expect(await waitFor(() => !pidAlive(grandchild), 5_000)).toBe(true);
  });

  it("escalates to SIGKILL for a tree that ignores SIGTERM", async () => {
    const ctx = makeContext({ input: "trap '' TERM; sh -c \"trap '' TERM; sleep 30\" & echo $!; wait" }, dir.path);
    const running = createShellAgent({ killGraceMs: 200 }).execute(ctx).catch((e: unknown) => e);
    expect(await waitFor(() => ctx.outputs.length > 0, 5_000)).toBe(true);
    const grandchild = Number(ctx.outputs[0]);
    ctx.controller.abort();
    expect(hasCode(await running, "CANCELLED")).toBe(true);
    expect(await waitFor(() => !pidAlive(grandchild), 5_000)).toBe(true);
  });

  it("times out a process that never exits, per task from metadata", async () => {
    const ctx = makeContext({ input: "sleep 30 & echo $!; wait", metadata: { timeoutMs: 300 } }, dir.path);
    const err = await createShellAgent({ killGraceMs: 200 }).execute(ctx).catch((e: unknown) => e);
    expect(hasCode(err, "TIMEOUT")).toBe(true);
    expect((err as Error).message).toContain("300 ms");
    const grandchild = Number(ctx.outputs[0]);
    expect(await waitFor(() => !pidAlive(grandchild), 5_000)).toBe(true);
  });

  it("refuses a malformed per-task timeout", async () => {
    const ctx = makeContext({ input: "true", metadata: { timeoutMs: -5 } }, dir.path);
    const err = await createShellAgent().execute(ctx).catch((e: unknown) => e);
    expect(hasCode(err, "INVALID_INPUT")).toBe(true);
    expect((err as Error).message).toContain("metadata.timeoutMs");
  });

  it("keeps head and tail of a flood with a marker naming the bytes cut", async () => {
    // 20,000 numbered lines of 10 bytes ("%09d\n") = 200,000 bytes against a 10,000-byte limit.
    const ctx = makeContext({ input: "i=0; while [ $i -lt 20000 ]; do printf '%09d\\n' $i; i=$((i+1)); done" }, dir.path);
    const result = await createShellAgent({ outputLimitBytes: 10_000 }).execute(ctx);
    expect(result.output.startsWith("000000000\n000000001\n")).toBe(true);
    expect(result.output.endsWith("000019998\n000019999\n")).toBe(true);
    expect(result.output).toContain("[... 190000 bytes cut by the output limit of 10000 bytes ...]");
    expect(result.data).toMatchObject({ stdoutBytes: 200_000, cutBytes: 190_000 });
    // Streaming stopped at the limit too: about 1,000 lines plus one marker, not 20,000.
    expect(ctx.outputs.length).toBeLessThan(1_100);
    expect(ctx.outputs.at(-1)).toContain("output limit of 10000 bytes reached");
  });

  it("does not leak the node's secrets into commands", async () => {
    const env = { PATH: process.env["PATH"], HOME: "/home/someone", AWS_SECRET_ACCESS_KEY: "hunter2", OPENAI_API_KEY: "sk-x" };
    const ctx = makeContext({ input: "env" }, dir.path);
    const result = await createShellAgent({ env }).execute(ctx);
    expect(result.output).toContain("HOME=/home/someone");
    expect(result.output).not.toContain("hunter2");
    expect(result.output).not.toContain("sk-x");
    const granted = await createShellAgent({ env, envGrant: { pass: ["OPENAI_API_KEY"], set: { MODE: "ci" } } }).execute(
      makeContext({ input: "env" }, dir.path),
    );
    expect(granted.output).toContain("OPENAI_API_KEY=sk-x");
    expect(granted.output).toContain("MODE=ci");
    expect(granted.output).not.toContain("hunter2");
  });

  it("finishes when a backgrounded child keeps the pipes open, and reaps it", async () => {
    const ctx = makeContext({ input: "sleep 30 & echo $!" }, dir.path);
    const result = await createShellAgent().execute(ctx);
    const grandchild = Number(result.output.trim());
    expect(await waitFor(() => !pidAlive(grandchild), 5_000)).toBe(true);
  });

  it("is a CoderClawError for a missing workspace, and the process carries on", async () => {
    const err = await createShellAgent().execute(makeContext({ input: "true" }, join(dir.path, "missing"))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CoderClawError);
    expect((err as Error).message).toBe(`could not start /bin/sh: working directory ${join(dir.path, "missing")} does not exist`);
    const noProgram = await createShellAgent({ shell: "/no/such/sh" }).execute(makeContext({ input: "true" }, dir.path)).catch((e: unknown) => e);
    expect((noProgram as Error).message).toBe("could not start /no/such/sh: ENOENT");
  });
});

describe("abort reasons", () => {
  it("map the engine's causes to typed errors", async () => {
    const codeFor = (reason: unknown): string => {
      const c = new AbortController();
      c.abort(reason);
      return abortError(c.signal).code;
    };
    expect(codeFor("cancelled")).toBe("CANCELLED");
    expect(codeFor("timeout")).toBe("TIMEOUT");
    expect(codeFor("shutdown")).toBe("SHUTTING_DOWN");
    expect(codeFor(undefined)).toBe("CANCELLED");
    expect(codeFor(new CoderClawError("PERMISSION_DENIED", "revoked"))).toBe("PERMISSION_DENIED");
    const timed = AbortSignal.timeout(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(abortError(timed).code).toBe("TIMEOUT");
  });
});

describe("a failing flood", () => {
  it("fails with a bounded message quoting the end of stderr", async () => {
    const dirFlood = tempDir("flood");
    try {
      const ctx = makeContext({ input: "i=0; while [ $i -lt 5000 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done; echo 'final cause' >&2; exit 9" }, dirFlood.path);
      const err = await createShellAgent({ outputLimitBytes: 8_192 }).execute(ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExecutionFailedError);
      expect((err as ExecutionFailedError).exitCode).toBe(9);
      expect((err as Error).message).toMatch(/final cause$/);
      expect((err as Error).message.length).toBeLessThan(2_200);
    } finally {
      dirFlood.cleanup();
    }
  });
});

describe("per-task timeouts", () => {
  it("can shorten the agent's timeout but not lengthen it", () => {
    expect(taskTimeout(undefined, 1_000)).toBe(1_000);
    expect(taskTimeout({ timeoutMs: 200 }, 1_000)).toBe(200);
    expect(taskTimeout({ timeoutMs: 5_000 }, 1_000)).toBe(1_000);
  });
});

describe("an output handler that throws", () => {
  it("fails the run and kills the process instead of crashing the node", async () => {
    const ws = tempDir("throwing");
    try {
      const ctx = makeContext({ input: "echo first; sleep 30" }, ws.path);
      ctx.output = () => {
        throw new Error("history is full");
      };
      const err = await createShellAgent({ killGraceMs: 200 }).execute(ctx).catch((e: unknown) => e);
      expect(hasCode(err, "UNAVAILABLE")).toBe(true);
      expect((err as Error).message).toBe("output handler failed: Error: history is full");
    } finally {
      ws.cleanup();
    }
  });
});
