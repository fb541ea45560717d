import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../node/create-node.js";
import { percentile } from "./report.js";

async function routedOnce(a: CoderClawNode, b: CoderClawNode): Promise<number> {
  const t0 = performance.now();
  const task = await a.adapter.submitTask({ description: "bench", input: "x", agentId: "echo" }, { route: b.peerId });
  for await (const u of a.adapter.streamTaskUpdates(task.id)) if (u.status === "completed" || u.status === "failed") break;
  return performance.now() - t0;
}

/**
 * Routed no-op tasks between two in-process nodes on 127.0.0.1: A submits `echo`
 * pinned to B and follows it to completion over the task protocol. p50 from
 * sequential tasks; throughput with `window` tasks in flight.
 */
export async function measureRoutedTasks(options: { sequential: number; total: number; window: number }): Promise<Record<string, number>> {
  const dirs = [mkdtempSync(join(tmpdir(), "cc-bench-routed-a-")), mkdtempSync(join(tmpdir(), "cc-bench-routed-b-"))];
  const [a, b] = await Promise.all(dirs.map((dataDir) => createNode({ dataDir, mdns: false, agents: createBuiltinRegistry(), maxConcurrentTasks: 64 })));
  try {
    await a!.createMesh("bench");
    const { invite } = await a!.pairing.invite("trusted", 60_000);
    await b!.pairing.join(invite);
    for (let i = 0; i < 50; i++) await routedOnce(a!, b!);
    const latencies: number[] = [];
    for (let i = 0; i < options.sequential; i++) latencies.push(await routedOnce(a!, b!));
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: options.window }, async () => {
        while (next < options.total) {
          next++;
          await routedOnce(a!, b!);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    return {
      routed_task_p50_ms: percentile(latencies, 50),
      routed_task_p99_ms: percentile(latencies, 99),
      routed_tasks_per_sec: Math.round(options.total / seconds),
    };
  } finally {
    await Promise.all([a!.stop(), b!.stop()]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
