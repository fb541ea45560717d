/**
 * `npm run bench:exec`: what running a command as a task costs on top of the
 * process itself. In one run, sequentially and interleaved so machine noise
 * hits all alike:
 *  - `spawnTrue`: `true` spawned with child_process, until 'close';
 *  - `shellExecTask`: a `shell` agent task (skill shell-exec) with input `true`,
 *    from `engine.submit` to its `completed` event, through the real engine and
 *    LevelDB storage;
 *  - `shellExecExecutor`: the same executor called directly (scrubbed env,
 *    process group, line streaming, output limit), without the engine.
 * Prints one JSON object; `ratio` is shellExecTask / spawnTrue (target <= 1.5).
 */
import "../src/polyfills.js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionContext } from "../src/agents/executor.js";
import { createAgentRegistry } from "../src/agents/registry.js";
import { createShellAgent } from "../src/agents/shell.js";
import { isTerminal } from "../src/engine/state-machine.js";
import { openLocalCore, type LocalCore } from "../src/runtime/local-core.js";
import { percentile, printResult, sized } from "./report.js";

const ITERATIONS = Number(process.env["BENCH_ITERATIONS"] ?? sized(500, 10));
const WARMUP = sized(20, 2);

function spawnTrue(cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", [], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))));
  });
}

/** Submit one `shell` task running `true` and resolve when it completes. */
function runTask(core: LocalCore): Promise<void> {
  return new Promise((resolve, reject) => {
    let taskId: string | undefined;
    const early: Array<[string, string]> = [];
    const settle = (id: string, status: string): void => {
      off();
      if (status === "completed") resolve();
      else reject(new Error(`task ${id} ended ${status}`));
    };
    const off = core.engine.onEvent((id, event) => {
      if (event.type !== "status_changed" || !isTerminal(event.status)) return;
      if (taskId === undefined) early.push([id, event.status]);
      else if (id === taskId) settle(id, event.status);
    });
    core.engine.submit({ description: "bench", input: "true", agentId: "shell" }).then((task) => {
      taskId = task.id;
      const done = isTerminal(task.status) ? task.status : early.find(([id]) => id === task.id)?.[1];
      if (done !== undefined) settle(task.id, done);
    }, reject);
  });
}

function stats(samples: number[]): { meanMs: number; p50Ms: number; p99Ms: number } {
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { meanMs: Math.round(mean * 1000) / 1000, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99) };
}

/**
 * Run each case once per iteration, in a rotating order, so that load from
 * elsewhere on the machine drifts over all cases alike.
 */
async function measure(cases: Array<{ run: () => Promise<unknown>; into: number[] }>): Promise<void> {
  for (let i = 0; i < WARMUP; i++) for (const c of cases) await c.run();
  for (let i = 0; i < ITERATIONS; i++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(i + k) % cases.length];
      if (c === undefined) continue;
      const start = performance.now();
      await c.run();
      c.into.push(performance.now() - start);
    }
  }
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "coderclaw-bench-exec-"));
  const core = await openLocalCore({ dataDir, agents: createAgentRegistry({ dataDir }) });
  try {
    const agent = createShellAgent();
    const ctx = (): ExecutionContext => ({
      taskId: "bench",
      request: { description: "bench", input: "true" },
      workspace: dataDir,
      signal: new AbortController().signal,
      progress: () => undefined,
      output: () => undefined,
      checkpoint: () => Promise.resolve(),
    });
    const direct: number[] = [];
    const task: number[] = [];
    const executor: number[] = [];
    await measure([
      { run: () => spawnTrue(dataDir), into: direct },
      { run: () => runTask(core), into: task },
      { run: () => agent.execute(ctx()), into: executor },
    ]);
    const d = stats(direct);
    const t = stats(task);
    const e = stats(executor);
    printResult("exec", {
      command: "true",
      samplesEach: direct.length,
      spawnTrue: d,
      shellExecTask: t,
      shellExecExecutor: e,
      ratio: { taskMean: round2(t.meanMs / d.meanMs), taskP50: round2(t.p50Ms / d.p50Ms), executorMean: round2(e.meanMs / d.meanMs) },
      target: { ratio: 1.5 },
    });
  } finally {
    await core.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
