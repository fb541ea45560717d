/** The p-th percentile (0-100) of `values`, by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[rank]! * 1000) / 1000;
}

/** Print one benchmark's result as one JSON object on stdout, with the machine it ran on. */
export function printResult(name: string, figures: Record<string, unknown>): void {
  const machine = { node: process.version, platform: process.platform, arch: process.arch };
  process.stdout.write(JSON.stringify({ bench: name, ...figures, machine }, null, 2) + "\n");
}

/**
 * `--smoke`: the benchmark runs its whole path at a size that takes seconds, so
 * `npm test` can check that it still runs and prints every figure. Figures from
 * a smoke run measure nothing.
 */
export const SMOKE = process.argv.includes("--smoke");

/** `full`, or `smoke` in a {@link SMOKE} run. */
export function sized(full: number, smoke: number): number {
  return SMOKE ? smoke : full;
}
