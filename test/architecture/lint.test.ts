import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runScript } from "../helpers/cli.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ESLINT = join(root, "node_modules", "eslint", "bin", "eslint.js");

/**
 * `npm run lint` as one of the tests, so that `npm test` lints: the run starts
 * with it beside the reachability suites, which mostly wait on their networks
 * (vitest.config.ts), instead of a minute of linting before any test starts.
 */
describe("lint", () => {
  it("eslint finds nothing in the tree (eslint.config.js, docs/lint.md)", { timeout: 600_000 }, async () => {
    const { code, stdout, stderr } = await runScript(ESLINT, [".", "--max-warnings", "0"], 590_000, process.env, root);
    expect(code, `${stdout}${stderr}`).toBe(0);
  });
});
