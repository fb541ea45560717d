import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** `git` run in `cwd` as a test's user, answering what it printed. */
export function gitIn(cwd: string): (...args: string[]) => string {
  return (...args) => execFileSync("git", ["-c", "user.email=t@t", "-c", "user.name=t", ...args], { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
}

/** A git repository made at `dir` with one commit of `a.txt` ("hello"), and `git` run there. */
export function helloRepository(dir: string): (...args: string[]) => string {
  mkdirSync(dir, { recursive: true });
  const git = gitIn(dir);
  git("init", "-q");
  writeFileSync(join(dir, "a.txt"), "hello\n");
  git("add", ".");
  git("commit", "-qm", "init");
  return git;
}
