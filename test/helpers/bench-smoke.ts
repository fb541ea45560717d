import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { runScript } from "./cli.js";

/**
 * Running an `npm run bench:*` script at smoke size (`--smoke`) from the
 * build, for test/bench/smoke*.test.ts: each still runs its whole path,
 * exits, and prints every figure its issue asks for. The figures of a smoke
 * run measure nothing, so only their presence and sanity are checked.
 */

const BENCH_DIR = fileURLToPath(new URL("../../dist/bench/", import.meta.url));

/** Runs `dist/bench/<name>.js --smoke` and returns the JSON object it printed. */
export async function runBench(name: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const script = `${BENCH_DIR}${name}.js`;
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first (npm test does)`);
  const { code, stdout, stderr } = await runScript(script, ["--smoke"], timeoutMs);
  if (code !== 0) throw new Error(`bench ${name} exited ${code}; stderr: ${stderr}`);
  try {
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`bench ${name} printed no JSON object: ${stdout.slice(0, 500)}`, { cause: err });
  }
}

/** The value at a dotted path of a parsed JSON object. */
export function at(value: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((v, k) => (typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined), value);
}

/** Each figure at `paths` is a finite number above zero. */
export function expectPositive(result: Record<string, unknown>, paths: readonly string[]): void {
  for (const path of paths) {
    const v = at(result, path);
    expect(typeof v === "number" && Number.isFinite(v) && v > 0, `${path} = ${String(v)}`).toBe(true);
  }
}


/** A benchmark run at smoke size, the figures it must print, and what else its result must show. */
export interface BenchCase {
  name: string;
  timeoutMs: number;
  figures: readonly string[];
  check?: (result: Record<string, unknown>) => void;
}

/** One test per case: the benchmark runs, exits, and prints its name and every figure. */
export function itRunsEachBench(cases: readonly BenchCase[]): void {
  for (const { name, timeoutMs, figures, check } of cases) {
    it(`bench:${name} runs and prints its figures`, { timeout: timeoutMs + 5_000 }, async () => {
      const result = await runBench(name, timeoutMs);
      expect(result.bench).toBe(name);
      expectPositive(result, figures);
      check?.(result);
    });
  }
}
