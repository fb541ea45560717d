import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * What a person at a terminal sees against what a pipe gets. `script` (util-linux)
 * runs the CLI on a pseudo-terminal; the same command with plain pipes must carry
 * no escape codes at all.
 */

const SCRIPT = "/usr/bin/script";
const ESC = "\u001b";

let home: string;
const cleanups: Array<() => unknown> = [];
beforeAll(() => {
  assertBuilt();
  const d = tempDir("cc-tty-");
  cleanups.push(() => d.remove());
  home = d.path;
});
afterAll(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, CODERCLAW_HOME: home, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, out: stdout + stderr });
    });
  });
}

/** The CLI on a pseudo-terminal: stdout and stderr are the terminal, as for a person. */
// A terminal as a person has one, whatever the tests run in: CI may set TERM=dumb or NO_COLOR, and the table library turns colour off under CI.
const onTerminal = (args: string[], env: NodeJS.ProcessEnv = {}) => run(SCRIPT, ["-qfec", [process.execPath, CLI, ...args].map(quote).join(" "), "/dev/null"], { TERM: "xterm-256color", NO_COLOR: undefined, NODE_DISABLE_COLORS: undefined, FORCE_COLOR: undefined, CI: undefined, ...env });
const piped = (args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, [CLI, ...args], env);

describe.skipIf(!existsSync(SCRIPT))("on a terminal and through a pipe", () => {
  it("--wait shows the task id, then a progress bar, on a terminal", { timeout: 60_000 }, async () => {
    const r = await onTerminal(["task", "submit", "-a", "sleep", "1500 3", "--wait"]);
    expect(r.code).toBe(0);
    const id = /^task ([0-9a-f-]{36})\r?$/m.exec(r.out);
    expect(id).not.toBeNull();
    const bar = r.out.search(/[░█]+ \d+% \| (pending|planning|running)/);
    expect(bar).toBeGreaterThan(r.out.indexOf(id![0]));
    expect(r.out).toContain(ESC);
    expect(r.out).toContain("slept 1500 ms");
  });

  it("the same command piped has no escape codes, and one line per update", { timeout: 60_000 }, async () => {
    const r = await piped(["task", "submit", "-a", "sleep", "1500 3", "--wait"]);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain(ESC);
    expect(r.out).toMatch(/^task [0-9a-f-]{36}\npending /m);
    expect(r.out).toMatch(/^running 33% step 1\/3$/m);
  });

  it("tables are coloured on a terminal, plain piped or with NO_COLOR", { timeout: 60_000 }, async () => {
    expect((await onTerminal(["agents"])).out).toContain(ESC);
    expect((await onTerminal(["agents"], { NO_COLOR: "1" })).out).not.toContain(ESC);
    expect((await piped(["task", "list"])).out).not.toContain(ESC);
  });
});
