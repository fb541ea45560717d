import "../src/polyfills.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openLocalCore, type LocalCore } from "../src/runtime/local-core.js";
import { isTerminal } from "../src/engine/state-machine.js";
import { percentile, printResult } from "./report.js";

/** Submit `n` no-op tasks with at most `window` submissions in flight; latency is submit -> completed. */
async function runNoop(core: LocalCore, n: number, window: number): Promise<{ seconds: number; latencies: number[] }> {
  const started = new Map<string, number>();
  const latencies: number[] = [];
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const off = core.engine.onEvent((taskId, e) => {
    if (e.type === "status_changed" && isTerminal(e.status)) {
      const t0 = started.get(taskId);
      if (t0 !== undefined) latencies.push(performance.now() - t0);
      started.delete(taskId);
      if (++done === n) resolveAll();
    }
  });
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const s = performance.now();
      const task = await core.engine.submit({ description: "bench", input: "x", agentId: "echo" });
      if (!isTerminal(task.status)) started.set(task.id, s);
      else done++;
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  await all;
  off();
  return { seconds: (performance.now() - t0) / 1000, latencies };
}

async function fill(core: LocalCore, total: number): Promise<void> {
  const batch = 2000;
  for (let i = 0; i < total; i += batch) {
    await runNoop(core, Math.min(batch, total - i), 500);
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const stored = quick ? 5_000 : 100_000;
  const dir = mkdtempSync(join(tmpdir(), "cc-bench-engine-"));
  const opts = { maxConcurrentTasks: 64 };
  try {
    let core = await openLocalCore({ dataDir: dir, ...opts });
    await runNoop(core, 1000, 200); // warm-up: JIT, wasm, LevelDB files
    const measure = quick ? 2000 : 10_000;
    const small = await runNoop(core, measure, 500);
    const perTaskSmall = small.seconds / measure;
    await fill(core, stored - (await core.repository.count()));
    const large = await runNoop(core, measure, 500);
    const perTaskLarge = large.seconds / measure;
    const storedCount = await core.repository.count();
    await core.close();

    const rssBefore = process.memoryUsage().rss;
    const c0 = performance.now();
    core = await openLocalCore({ dataDir: dir, ...opts });
    const coldStartMs = performance.now() - c0;
    const rssAfter = process.memoryUsage().rss;
    await core.close();

    printResult("engine", {
      noopTasks: measure,
      throughputTasksPerSec: Math.round(measure / small.seconds),
      latencyMs: { p50: percentile(small.latencies, 50), p99: percentile(small.latencies, 99) },
      target: { throughputTasksPerSec: 5000, bullmqOnLocalRedisJobsPerSec: 5400 },
      flatness: {
        storedSmall: 1000 + measure,
        storedLarge: storedCount - measure,
        perTaskMsSmall: perTaskSmall * 1000,
        perTaskMsLarge: perTaskLarge * 1000,
        ratio: perTaskLarge / perTaskSmall,
        target: 1.3,
      },
      coldStart: { tasksStored: storedCount, ms: coldStartMs, targetMs: 1000, rssMb: rssAfter / 1048576, rssDeltaMb: (rssAfter - rssBefore) / 1048576, targetRssMb: 200 },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
