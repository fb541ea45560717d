import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { terminalSafe } from "../../node/cli/terminal-guard.js";
import { assertBuilt, CLI, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** What a member can put in a task's description, output or error, each with what a terminal would do with it. */
const HOSTILE: Array<[string, string]> = [
  ["\x1b]52;c;ZWNobyBwd25lZA==\x07", "write the clipboard (OSC 52)"],
  ["\x1b]0;root@prod\x1b\\", "retitle the window"],
  ["\x1b[2J\x1b[H", "clear the screen and home the cursor"],
  ["\x1b[1A\x1b[2K", "move up and erase a line already printed"],
  ["\r", "go back to overwrite the line"],
  ["\x9b2J", "the 8-bit CSI"],
  ["\x1bP1$r\x1b\\", "a device control string"],
  ["\x1b]8;;https://evil.example\x07", "a hyperlink's hidden target"],
  ["\x07", "the bell"],
];

describe("what the CLI prints to a terminal", () => {
  it("keeps text, colours, newlines and tabs, and drops what a terminal acts on", () => {
    expect(terminalSafe("plain\ttext\nnext \x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m é ✓")).toBe("plain\ttext\nnext \x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m é ✓");
    for (const [sequence, what] of HOSTILE) expect(terminalSafe(`a${sequence}b`), what).toBe("ab");
  });

  it("is what `task show` prints on a terminal, while a pipe gets the bytes as they are", { timeout: 60_000 }, async () => {
    assertBuilt();
    const home = tempDir("cc-terminal-");
    cleanups.push(() => home.remove());
    const description = `deploy${HOSTILE.map(([s]) => s).join("")}done`;
    const submitted = await runCli(["task", "submit", "x", "--agent", "echo", "-d", description, "--route", "local"], home.path);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    // A pseudo-terminal, as a user's shell gives the CLI.
    const shown = execFileSync("script", ["-qec", `stty cols 250 rows 50; ${process.execPath} ${CLI} task show ${id}`, "/dev/null"], { env: { ...process.env, CODERCLAW_HOME: home.path }, encoding: "utf8" });
    expect(shown).toContain("deploydone");
    for (const [sequence, what] of HOSTILE.filter(([s]) => s !== "\r")) expect(shown, what).not.toContain(sequence);
    const piped = await runCli(["task", "list", "--json"], home.path);
    expect((JSON.parse(piped.stdout) as Array<{ description: string }>)[0]!.description).toBe(description);
  });
});
