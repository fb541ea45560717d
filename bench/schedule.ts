import "../src/polyfills.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import type { AgentExecutor } from "../src/agents/executor.js";
import type { TaskState } from "../src/contract/types.js";
import { isTerminal } from "../src/engine/state-machine.js";
import { createNode, type CoderClawNode, type NodeOptions } from "../node/create-node.js";
import { percentile, printResult, sized } from "./report.js";

/**
 * `npm run bench:schedule`: what placement and store-and-forward cost and
 * achieve, each figure beside its ideal or a baseline measured in this run:
 * - makespan of 14 tasks of 1 s on nodes with 1, 2 and 4 slots (ideal 2 s);
 * - from a capable member's arrival to the start of the task that waited for it;
 * - 1,000 waiting tasks and a capable member joins: until all started and ended;
 * - routed p50 through the submitter's dispatcher (the task kept on the
 *   submitter, run as an attempt, mirrored back) against the attempt alone (a
 *   signed submission straight to the executor, followed to its end);
 * - what durable completion costs: the same routed p50 on a pair of nodes that
 *   tell outcomes before they are durable (as before issue 16), alternated with a
 *   pair that does not, so that both see the machine at the same moments.
 */

/** The agent only the late member has: quick, so what is measured is the scheduling. */
const onlyLate: AgentExecutor = {
  info: { id: "only-late", name: "only on the late member", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => ({ output: ctx.request.input }),
};

const dirs: string[] = [];

async function node(options: Partial<NodeOptions> = {}, agents: AgentExecutor[] = [], dataDir?: string): Promise<CoderClawNode> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "cc-bench-sched-"));
  if (dataDir === undefined) dirs.push(dir);
  return createNode({ dataDir: dir, mdns: false, agents: createBuiltinRegistry(agents), inboundConnectionThreshold: 1000, ...options });
}

/** `nodes[0]` founds a mesh and pairs the others; everyone dials everyone. */
async function mesh(nodes: CoderClawNode[]): Promise<void> {
  const [founder, ...rest] = nodes;
  await founder!.createMesh("bench");
  for (const n of rest) {
    const { invite } = await founder!.pairing.invite("trusted", 60_000);
    await n.pairing.join(invite);
  }
  for (const x of nodes) for (const y of nodes) if (x !== y) await x.dial(y.multiaddrs()[0]!).catch(() => undefined);
}

async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function ended(n: CoderClawNode, id: string): Promise<TaskState> {
  for await (const _ of n.adapter.streamTaskUpdates(id));
  return (await n.adapter.getTaskState(id))!;
}

/** 14 tasks of `sleepMs` on nodes with 1, 2 and 4 slots: 7 slots, two waves. */
async function makespan(): Promise<Record<string, number>> {
  const sleepMs = sized(1000, 300);
  const nodes = [await node({ maxConcurrentTasks: 1 }), await node({ maxConcurrentTasks: 2 }), await node({ maxConcurrentTasks: 4 })];
  try {
    await mesh(nodes);
    const a = nodes[0]!;
    await until(async () => (await a.directory.members()).length === 2, "members");
    const start = Date.now();
    const tasks = await Promise.all(Array.from({ length: 14 }, () => a.adapter.submitTask({ description: "sleep", input: `${sleepMs} 2`, agentId: "sleep" })));
    const states = await Promise.all(tasks.map((t) => ended(a, t.id)));
    if (states.some((s) => s.status !== "completed")) throw new Error("a makespan task did not complete");
    const ms = Math.max(...states.map((s) => s.completedAt!.getTime())) - start;
    return { ms, idealMs: 2 * sleepMs, ratio: Math.round((ms / (2 * sleepMs)) * 1000) / 1000 };
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

/**
 * A and a late member L with the only agent the tasks need; L leaves, `count`
 * tasks wait on A, L comes back. Returns how long from L's arrival until the
 * first and the last task started there, and until the last ended.
 */
async function waitingForArrival(count: number): Promise<{ firstStartMs: number; allStartedMs: number; allEndedMs: number }> {
  const a = await node({ maxConcurrentTasks: 64 });
  const lateDir = mkdtempSync(join(tmpdir(), "cc-bench-sched-late-"));
  dirs.push(lateDir);
  let late = await node({ maxConcurrentTasks: 64 }, [onlyLate], lateDir);
  try {
    await mesh([a, late]);
    await late.stop();
    const ids = new Set<string>();
    for (let i = 0; i < count; i++) ids.add((await a.adapter.submitTask({ description: "waits", input: `${i}`, agentId: "only-late" })).id);
    const started = new Map<string, number>();
    const done = new Set<string>();
    const off = a.core.engine.onEvent((id, e) => {
      if (!ids.has(id)) return;
      if (e.status === "running" && !started.has(id)) started.set(id, Date.now());
      if (isTerminal(e.status) && e.type === "status_changed") done.add(id);
    });
    late = await node({ maxConcurrentTasks: 64 }, [onlyLate], lateDir);
    await late.dial(a.multiaddrs()[0]!);
    const arrived = Date.now();
    await until(() => started.size === count, "all started");
    const allStartedMs = Math.max(...started.values()) - arrived;
    await until(() => done.size === count, "all ended");
    const allEndedMs = Date.now() - arrived;
    off();
    return { firstStartMs: Math.min(...started.values()) - arrived, allStartedMs, allEndedMs };
  } finally {
    await Promise.all([a.stop(), late.stop()]);
  }
}

/** A submitter A that offers no agent (so every task goes to B) and B; both tell outcomes before they are durable when asked. */
async function routedPair(announceBeforeDurable: boolean): Promise<[CoderClawNode, CoderClawNode]> {
  const options = { maxConcurrentTasks: 64, announceBeforeDurable };
  const a = await node(options, []);
  const b = await node(options, [onlyLate]);
  await mesh([a, b]);
  await until(async () => (await a.directory.members()).length === 1, "members");
  return [a, b];
}

/** One echo task from A through its dispatcher to B, followed to its end: milliseconds. */
async function viaDispatcher(a: CoderClawNode, i: number): Promise<number> {
  const t = performance.now();
  const task = await a.adapter.submitTask({ description: "routed", input: `${i}`, agentId: "only-late" });
  await ended(a, task.id);
  return performance.now() - t;
}

/**
 * Sequential echo tasks from A to B: through the dispatcher, as bare attempts
 * straight to B, and through the dispatcher of a pair that tells outcomes
 * before they are durable; alternated, so that all three see the same machine at
 * the same moments, the first 20 of each warming up.
 */
async function routed(): Promise<Record<string, number>> {
  const n = sized(300, 30);
  const [a, b] = await routedPair(false);
  const [early, earlyExecutor] = await routedPair(true).catch(async (err: unknown) => {
    await Promise.all([a.stop(), b.stop()]);
    throw err;
  });
  try {
    const durable: number[] = [];
    const bare: number[] = [];
    const notDurable: number[] = [];
    for (let i = 0; i < n + 20; i++) {
      const d = await viaDispatcher(a, i);
      const t = performance.now();
      const attempt = await a.client.submit(b.peerId, { description: "bare", input: `${i}`, agentId: "only-late" }, undefined, { follow: true });
      for await (const e of a.client.subscribe(b.peerId, attempt.id, 0)) if (isTerminal(e.status)) break;
      const bareMs = performance.now() - t;
      const e = await viaDispatcher(early, i);
      if (i < 20) continue;
      durable.push(d);
      bare.push(bareMs);
      notDurable.push(e);
    }
    const p50 = percentile(durable, 50);
    const bareP50 = percentile(bare, 50);
    const beforeP50 = percentile(notDurable, 50);
    return {
      p50Ms: p50,
      p99Ms: percentile(durable, 99),
      bareAttemptP50Ms: bareP50,
      ratio: Math.round((p50 / bareP50) * 1000) / 1000,
      outcomeBeforeDurableP50Ms: beforeP50,
      durableCompletionRatio: Math.round((p50 / beforeP50) * 1000) / 1000,
      tasks: n,
    };
  } finally {
    await Promise.all([a, b, early, earlyExecutor].map((x) => x.stop()));
  }
}

try {
  const span = await makespan();
  const arrivals: number[] = [];
  for (let i = 0; i < sized(3, 1); i++) arrivals.push((await waitingForArrival(1)).firstStartMs);
  const queued = sized(1000, 50);
  const many = await waitingForArrival(queued);
  const route = await routed();
  printResult("schedule", {
    makespan: span,
    arrivalToStartMs: { p50: percentile(arrivals, 50), max: Math.max(...arrivals), samples: arrivals.length },
    queuedThroughput: { tasks: queued, allStartedMs: many.allStartedMs, allEndedMs: many.allEndedMs, tasksPerSec: Math.round((queued / many.allEndedMs) * 1000 * 10) / 10 },
    routed: route,
  });
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
