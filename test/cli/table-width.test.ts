import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * Tables on a terminal fit its width (`script` gives the CLI a pseudo-terminal
 * of a chosen width); piped, every cell stays whole on one line.
 */

const SCRIPT = "/usr/bin/script";
let home: { path: string; remove: () => void };
beforeAll(() => {
  assertBuilt();
  home = tempDir("cc-table-width-");
});
afterAll(() => home.remove());

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const plain = (s: string): string => s.replace(/\u001b\[[0-9;]*m/g, "").replace(/\r/g, "");

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, CODERCLAW_HOME: home.path, TERM: "xterm-256color", NO_COLOR: "" }, timeout: 30_000 }, (err, stdout) => (err === null ? resolve(plain(stdout)) : reject(new Error(`${file} failed: ${err.message}`))));
  });
}

const onTerminal = (columns: number, args: string[]): Promise<string> => run(SCRIPT, ["-qfec", `stty cols ${columns}; ${[process.execPath, CLI, ...args].map(quote).join(" ")}`, "/dev/null"]);
const width = (text: string): number => Math.max(...text.split("\n").map((l) => [...l].length));

describe.skipIf(!existsSync(SCRIPT))("table width", () => {
  it("fits a 60-column terminal, wrapping cells without losing characters", async () => {
    const piped = await run(process.execPath, [CLI, "agents"]);
    expect(width(piped)).toBeGreaterThan(60);
    const narrow = await onTerminal(60, ["agents"]);
    expect(width(narrow)).toBeLessThanOrEqual(60);
    // Every cell's text is still there, only broken across lines: compare the letters, borders and spaces aside.
    const letters = (s: string): string => s.replace(/[\s│─┌┐└┘├┤┬┴┼]/g, "");
    const cellsOf = (s: string): string[][] => s.split("\n").filter((l) => l.startsWith("│")).map((l) => l.split("│").slice(1, -1).map((c) => c.trim()));
    const columnText = (s: string, i: number): string => letters(cellsOf(s).map((r) => r[i] ?? "").join(""));
    for (let i = 0; i < 4; i++) expect(columnText(narrow, i)).toBe(columnText(piped, i));
  }, 60_000);

  it("leaves a table that fits as it is", async () => {
    const wide = await onTerminal(400, ["agents"]);
    const piped = await run(process.execPath, [CLI, "agents"]);
    expect(wide.trim()).toBe(piped.trim());
  }, 60_000);
});
