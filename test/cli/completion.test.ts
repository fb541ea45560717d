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

/**
 * What zsh's bash-completion layer (`bashcompinit`) gets from the script for
 * each command line of `lines` (words, the last being the one under the
 * cursor), all in one zsh (its completion system takes most of a second to
 * load): `_bash_complete` calls the script's function through `compgen -F`
 * with these `COMP_WORDS` under sh emulation, and gets the candidates back
 * unfiltered (zsh's own matching then takes those starting with the word).
 * Also what zsh registered for the command.
 */
function zshComplete(lines: string[][]): { registered: string; candidates: string[][] } {
  const script = [
    "autoload -U +X compinit && compinit -u -D",
    `source ${join(dir.path, "completion.zsh")}`,
    "print -r -- $_comps[coderclaw]",
    ...lines.flatMap((words) => [
      "print -r -- '--- candidates'",
      `COMP_WORDS=(${["coderclaw", ...words].map((w) => `'${w}'`).join(" ")})`,
      `COMP_CWORD=${words.length}`,
      `compgen -F _coderclaw_complete -- '${words.at(-1)}'`,
    ]),
  ].join("\n");
  const r = spawnSync("zsh", ["-f", "-c", script], { encoding: "utf8", env: shellEnv() });
  expect(r.stderr).toBe("");
  const [registered, ...candidates] = r.stdout.split("--- candidates\n");
  return { registered: registered!.trim(), candidates: candidates.map((c) => c.split("\n").filter((l) => l !== "")) };
}

/** What fish offers for the command line `line` (its `complete -C`), the descriptions dropped. */
function fishComplete(line: string): string[] {
  const r = spawnSync("fish", ["--no-config", "-c", `source ${join(dir.path, "completion.fish")}; complete -C '${line}'`], { encoding: "utf8", env: shellEnv() });
  expect(r.stderr).toBe("");
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split("\t")[0]!);
}

/** The shells keep their history and caches under a home of the test's, not the user's. */
function shellEnv(): NodeJS.ProcessEnv {
  const home = join(dir.path, "home");
  return { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_DATA_HOME: home, XDG_CACHE_HOME: home, ZDOTDIR: home };
}

describe("completion zsh and fish", () => {
  it("are generated from the same tree", () => {
    expect(scripts.zsh).toContain("bashcompinit");
    expect(scripts.zsh).toContain("complete -o default -F _coderclaw_complete coderclaw");
    expect(scripts.fish).toContain("complete -c coderclaw -n '__fish_use_subcommand' -a service");
    expect(scripts.fish).toContain("complete -c coderclaw -n '__fish_seen_subcommand_from service; and not __fish_seen_subcommand_from install uninstall status' -a install");
  });

  it.skipIf(!has("zsh"))("zsh registers the script and gets the candidates of the command the line is in, past option values", () => {
    const { registered, candidates } = zshComplete([["se"], ["service", ""], ["--home", "/tmp/x", "task", "sub"], ["task", "submit", "--ag"], ["service", "install", "--us"]]);
    expect(registered).toBe("_bash_complete -o default -F _coderclaw_complete");
    const [top, service, task, submit, install] = candidates;
    expect(top).toEqual(expect.arrayContaining(["session", "service", "task", "--home"]));
    expect(top).not.toContain("install");
    expect(service).toEqual(["install", "uninstall", "status", "--help"]);
    expect(task).toEqual(["submit", "list", "show", "events", "wait", "logs", "retry", "cancel", "clean", "grant", "diff", "apply", "artifacts", "--help"]);
    expect(submit).toEqual(expect.arrayContaining(["--agent", "--repo", "--artifacts"]));
    expect(install).toContain("--user");
  });

  it.skipIf(!has("fish"))("fish offers top-level commands, subcommands and options, past option values", () => {
    expect(fishComplete("coderclaw se")).toEqual(["service", "session"]);
    expect(fishComplete("coderclaw service ")).toEqual(["install", "status", "uninstall"]);
    expect(fishComplete("coderclaw --home /tmp/x task sub")).toEqual(["submit"]);
    expect(fishComplete("coderclaw task submit --ag")).toEqual(["--agent"]);
    expect(fishComplete("coderclaw service install --us")).toEqual(["--user"]);
    expect(fishComplete("coderclaw task apply --3")).toEqual(["--3way"]);
  });

  it("refuses an unknown shell as usage", async () => {
    const r = await runCli(["completion", "tcsh"], dir.path);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("bash, zsh, fish");
  });
});
