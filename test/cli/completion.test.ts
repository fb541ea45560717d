import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/** The completion scripts, loaded into the real shells where they are installed. */

let dir: { path: string; remove: () => void };
const scripts: Record<string, string> = {};

beforeAll(async () => {
  assertBuilt();
  dir = tempDir("cc-completion-");
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await runCli(["completion", shell], dir.path);
    expect(r.code).toBe(0);
    scripts[shell] = r.stdout;
    writeFileSync(join(dir.path, `completion.${shell}`), r.stdout);
  }
}, 60_000);
afterAll(() => dir.remove());

/** What bash offers for the command line `words`, the last being the word under the cursor. */
function bashComplete(words: string[]): string[] {
  const script = [
    `source ${join(dir.path, "completion.bash")}`,
    `COMP_WORDS=(${["coderclaw", ...words].map((w) => `'${w}'`).join(" ")})`,
    `COMP_CWORD=${words.length}`,
    "_coderclaw_complete",
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  return r.stdout.split("\n").filter((l) => l !== "");
}

const has = (shell: string): boolean => spawnSync(shell, ["--version"]).status === 0;

describe("completion bash", () => {
  it.skipIf(!has("bash"))("offers top-level commands, subcommands and options, past option values", () => {
    expect(bashComplete(["se"])).toEqual(["session", "service"]);
    expect(bashComplete(["service", ""])).toEqual(["install", "uninstall", "status", "--help"]);
    expect(bashComplete(["--home", "/tmp/x", "task", "sub"])).toEqual(["submit"]);
    expect(bashComplete(["task", "submit", "--ag"])).toEqual(["--agent"]);
    expect(bashComplete(["service", "install", "--us"])).toEqual(["--user"]);
  });
});

describe("completion zsh and fish", () => {
  it("are generated from the same tree", () => {
    expect(scripts.zsh).toContain("bashcompinit");
    expect(scripts.zsh).toContain("complete -o default -F _coderclaw_complete coderclaw");
    expect(scripts.fish).toContain("complete -c coderclaw -n '__fish_use_subcommand' -a service");
    expect(scripts.fish).toContain("complete -c coderclaw -n '__fish_seen_subcommand_from service; and not __fish_seen_subcommand_from install uninstall status' -a install");
  });

  it.skipIf(!has("zsh"))("zsh parses its script", () => {
    expect(spawnSync("zsh", ["-n", join(dir.path, "completion.zsh")]).status).toBe(0);
  });

  it.skipIf(!has("fish"))("fish parses its script", () => {
    expect(spawnSync("fish", ["-n", join(dir.path, "completion.fish")]).status).toBe(0);
  });

  it("refuses an unknown shell as usage", async () => {
    const r = await runCli(["completion", "tcsh"], dir.path);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("bash, zsh, fish");
  });
});
