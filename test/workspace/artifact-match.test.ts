import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { glob } from "tinyglobby";
import { afterAll, describe, expect, it } from "vitest";
import { artifactMatcher } from "../../src/workspace/artifact-match.js";
import { tempDir } from "../helpers/temp-dir.js";

const dir = tempDir("cc-artifact-match-");
afterAll(() => dir.remove());

const FILES = ["junit.xml", "out/report.txt", "out/deep/a.json", "out/.hidden", ".env", "coverage/lcov.info", "coverage/x/summary.json", "a/b/c.txt", "a/c.txt", "b/c.txt", "src/report.txt", "dist/app.js", "dist/app.js.map", "notes/readme.md"];
for (const f of FILES) {
  mkdirSync(dirname(join(dir.path, f)), { recursive: true });
  writeFileSync(join(dir.path, f), f);
}

describe("artifactMatcher", () => {
  it("names exactly the files the executor's glob finds for the same patterns, dotfiles included", async () => {
    const cases = [["out/**"], ["*.xml"], ["coverage/**/*.json"], ["**/report.txt"], ["./junit.xml"], ["{a,b}/*.txt"], ["a/*/c.txt"], ["dist/*.js"], ["**/.hidden"], [".env"], ["out/*", "dist/**"], ["nothing/**"], ["**"]];
    for (const patterns of cases) {
      const found = (await glob(patterns, { cwd: dir.path, onlyFiles: true, dot: true, followSymbolicLinks: false, expandDirectories: false })).sort();
      expect(FILES.filter(artifactMatcher(patterns)).sort(), patterns.join(" ")).toEqual(found);
    }
  });

  it("names nothing without patterns", () => {
    expect(FILES.filter(artifactMatcher([]))).toEqual([]);
  });
});
