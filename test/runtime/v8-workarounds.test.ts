import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const child = fileURLToPath(new URL("../fixtures/wasm-deopt-child.mjs", import.meta.url));
const built = fileURLToPath(new URL("../../dist/src/polyfills.js", import.meta.url));
const affected = /^1[12]\./.test(process.versions.v8);

const run = (...args: string[]): { status: number | null; signal: NodeJS.Signals | null; out: string } => {
  const r = spawnSync(process.execPath, [child, ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
};

/**
 * The abort of Node 20's V8 seen under load with Automerge (issue 20), made
 * certain: a lazy deoptimization while an inlined call into WebAssembly that
 * returns externref runs.
 */
describe("V8 workarounds loaded by every entry point", () => {
  it.runIf(affected)("without them, the V8 of this Node aborts the process when such a call is deoptimized (the trigger is still there)", () => {
    const r = run();
    expect(r.out).toContain("unreachable code");
    expect(r.status === 133 || r.signal === "SIGTRAP", `exit ${r.status} ${r.signal}`).toBe(true);
  });

  it("with them, the process survives it", () => {
    expect(existsSync(built), "run `npm run build` first (npm test does)").toBe(true);
    const r = run("guarded");
    expect(r.status, r.out.slice(-2000)).toBe(0);
    expect(r.out).toMatch(/^survived \d+/);
  });
});
