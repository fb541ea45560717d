import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * The main commands' help ends with examples, and every option an example uses
 * is one the command (or the root) offers: an example that drifted from the
 * options would teach a command that fails.
 */

let dir: { path: string; remove: () => void };
let home: string;
let rootOptions: Set<string>;
const optionsIn = (help: string): Set<string> => new Set([...help.matchAll(/^\s+(?:-\w, )?(--[a-z][\w-]*)/gm)].map((m) => m[1]!));

beforeAll(async () => {
  assertBuilt();
  dir = tempDir("cc-help-");
  home = dir.path;
  rootOptions = optionsIn((await runCli(["--help"], home)).stdout);
});
afterAll(() => dir.remove());

describe("help examples", () => {
  it.each([["task"], ["task", "submit"], ["task", "list"], ["mesh"], ["devices"], ["status"], ["start"], ["service", "install"], ["logs"], ["completion"], ["session"]])("coderclaw %s %s --help", async (...path: string[]) => {
    const r = await runCli([...path, "--help"], home);
    expect(r.code).toBe(0);
    const [, examples] = r.stdout.split("\nExamples:\n");
    expect(examples, "an Examples: section").toBeDefined();
    const offered = new Set([...optionsIn(r.stdout), ...rootOptions]);
    const lines = examples!.split("\n").filter((l) => l.trim().startsWith("coderclaw ") && l.includes(` ${path.join(" ")}`));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      // Words after a lone -- belong to another command (service install passes them to start).
      const words = line.split("#")[0]!.trim().split(/\s+/);
      const own = words.includes("--") ? words.slice(0, words.indexOf("--")) : words;
      // An example of a subcommand (`coderclaw task list ...` under `task`) uses that subcommand's options, checked on its own help.
      const namesSubcommand = r.stdout.includes("\nCommands:\n") && own.length > path.length + 1 && !own[path.length + 1]!.startsWith("-");
      if (namesSubcommand) continue;
      for (const word of own.filter((w) => w.startsWith("--"))) expect(offered, `${line}: ${word}`).toContain(word);
    }
  });
});
