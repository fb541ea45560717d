import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let home: string;

beforeAll(async () => {
  assertBuilt();
  const d = tempDir("cc-reattach-");
  cleanups.push(() => d.remove());
  home = d.path;
  const node = await startCli(["start", "--no-mdns"], home, /control socket/);
  cleanups.push(() => node.stop());
}, 60_000);

/** The CLI as a child we can signal and feed; resolves when it exits. */
function child(args: string[], stdin?: string | Buffer): { interrupt(): void; waitFor(re: RegExp): Promise<void>; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, CODERCLAW_HOME: home }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const check = (): void => {
    for (const w of waiters.splice(0)) if (w.re.test(stdout + stderr)) w.resolve();
    else waiters.push(w);
  };
  proc.stdout.on("data", (d: Buffer) => ((stdout += d.toString()), check()));
  proc.stderr.on("data", (d: Buffer) => ((stderr += d.toString()), check()));
  proc.stdin.on("error", () => undefined);
  proc.stdin.end(stdin);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  return {
    interrupt: () => proc.kill("SIGINT"),
    waitFor: (re) => new Promise((resolve) => (waiters.push({ re, resolve }), check())),
    done: new Promise((resolve) => proc.on("exit", (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })))),
  };
}

const stateOf = async (id: string): Promise<{ status: string; metadata?: Record<string, unknown>; input?: string }> => JSON.parse((await runCli(["task", "show", id, "--json"], home)).stdout) as { status: string };

describe("re-attach: Ctrl-C stops following, not the task", () => {
  it("prints the id first; Ctrl-C says the task keeps running and how to re-attach (exit 130); task wait and task logs -f re-attach", { timeout: 60_000 }, async () => {
    const submit = child(["task", "submit", "-a", "sleep", "8000 8", "--wait"]);
    await submit.waitFor(/running \d+% step/);
    submit.interrupt();
    const r = await submit.done;
    expect(r.code).toBe(130);
    const id = /^task (\S+)$/m.exec(r.stderr)![1]!;
    // The id comes before any progress line.
    expect(r.stderr.indexOf(`task ${id}`)).toBe(0);
    expect(r.stderr).toContain(`interrupted: task ${id} keeps running; re-attach with: coderclaw task wait ${id}`);
    expect((await stateOf(id)).status).toBe("running");

    const logs = child(["task", "logs", "-f", id]);
    const wait = await runCli(["task", "wait", id], home, 30_000);
    expect(wait).toMatchObject({ code: 0, stdout: "slept 8000 ms\n" });
    const followed = await logs.done;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(/^\s*\d+ \S+ \S+\s+completed /m);
    // From the last event seen: no event printed twice.
    const seqs = followed.stdout.trim().split("\n").map((l) => Number(l.trim().split(" ")[0]));
    expect(new Set(seqs).size).toBe(seqs.length);
    const lines = (await runCli(["task", "logs", id, "--json"], home)).stdout.trim().split("\n").map((l) => JSON.parse(l) as { seq: number; timestamp: string });
    expect(lines.map((e) => e.seq)).toEqual(seqs);
    expect(lines[0]!.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it("--cancel-on-interrupt cancels the task on Ctrl-C", { timeout: 60_000 }, async () => {
    const submit = child(["task", "submit", "-a", "sleep", "5000 10", "--wait", "--cancel-on-interrupt"]);
    await submit.waitFor(/running \d+% step/);
    submit.interrupt();
    const r = await submit.done;
    expect(r.code).toBe(130);
    const id = /^task (\S+)$/m.exec(r.stderr)![1]!;
    expect(r.stderr).toContain(`interrupted: cancelled task ${id}`);
    expect((await stateOf(id)).status).toBe("cancelled");
  });

  it("task wait on an unknown id is an input error", { timeout: 30_000 }, async () => {
    expect(await runCli(["task", "wait", "01a24399-0000-7000-0000-000000000000"], home)).toMatchObject({ code: 2 });
  });
});

describe("input: stdin, --model, --timeout, --metadata", () => {
  it("task submit - reads the input from stdin, and refuses more than 1 MiB", { timeout: 60_000 }, async () => {
    const r = await child(["task", "submit", "-", "-a", "echo", "--wait"], "line one\nline two\n").done;
    expect(r).toMatchObject({ code: 0, stdout: "line one\nline two\n\n" });
    const big = await child(["task", "submit", "-", "-a", "echo"], Buffer.alloc(1024 * 1024 + 1, 0x61)).done;
    expect(big.code).toBe(2);
    expect(big.stderr).toContain("stdin holds more than 1048576 bytes");
  });

  it("--metadata k=v (repeatable) and --timeout reach the task, --model is taken; bad ones are refused with exit 2", { timeout: 60_000 }, async () => {
    const id = (await runCli(["task", "submit", "-a", "echo", "hi", "--metadata", "build.id=42", "--metadata", "team=core", "--model", "m-1", "--timeout", "2m"], home)).stdout.trim();
    expect((await stateOf(id)).metadata).toMatchObject({ "build.id": "42", team: "core", timeoutMs: 120_000 });
    for (const bad of [["--metadata", "novalue"], ["--metadata", "a=1", "--metadata", "a=2"], ["--metadata", "timeoutMs=5"], ["--timeout", "soon"]]) {
      const r = await runCli(["task", "submit", "-a", "echo", "hi", ...bad], home);
      expect({ bad, code: r.code }).toEqual({ bad, code: 2 });
    }
    const slow = await runCli(["task", "submit", "-a", "shell", "sleep 10", "--timeout", "1s", "--wait"], home, 30_000);
    expect(slow.code).toBe(1);
    expect(slow.stdout).toMatch(/^failed: .*did not finish within 1000 ?ms/m);
  });
});
