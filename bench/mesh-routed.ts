import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromString } from "@libp2p/peer-id";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../node/create-node.js";
import { percentile, sized } from "./report.js";
import { RAW_ECHO_PROTOCOL, rawRoundTrips } from "./raw-echo.js";
import type { ExecutorRequest } from "./routed-executor.js";
import { builtBenchScript } from "./built-script.js";

/** Two paired nodes: A submits, B executes. */
interface RoutedPair {
  submitter: CoderClawNode;
  executorId: string;
  /** CPU time of both nodes so far, ms. */
  cpuMs(): Promise<number>;
  /** CPU time of the executor's process so far, ms, when it has one of its own. */
  executorCpuMs?(): Promise<number>;
  /** Round trips of 32 bytes on one open stream between the two processes, ms. */
  rawRoundTrips?(count: number): Promise<number[]>;
  stop(): Promise<void>;
}

function processCpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

async function newSubmitter(): Promise<{ node: CoderClawNode; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "cc-bench-routed-a-"));
  const node = await createNode({ dataDir: dir, mdns: false, agents: createBuiltinRegistry(), maxConcurrentTasks: 64 });
  await node.createMesh("bench");
  return { node, dir };
}

/** Both nodes in this process, sharing one event loop. */
async function inOneProcess(): Promise<RoutedPair> {
  const { node: a, dir } = await newSubmitter();
  const bDir = mkdtempSync(join(tmpdir(), "cc-bench-routed-b-"));
  const b = await createNode({ dataDir: bDir, mdns: false, agents: createBuiltinRegistry(), maxConcurrentTasks: 64 });
  const { invite } = await a.pairing.invite("trusted", 60_000);
  await b.pairing.join(invite);
  return {
    submitter: a,
    executorId: b.peerId,
    cpuMs: async () => processCpuMs(),
    stop: async () => {
      await Promise.all([a.stop(), b.stop()]);
      for (const d of [dir, bDir]) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** The executor in a child process of its own, as two machines would run them. */
async function inTwoProcesses(): Promise<RoutedPair> {
  const script = builtBenchScript("routed-executor.js");
  const child: ChildProcess = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ask = async <T>(m: ExecutorRequest): Promise<T> => {
    const answer = once(child, "message");
    child.send(m);
    const [reply] = (await answer) as [T & { error?: string }];
    if (reply.error !== undefined) throw new Error(`executor: ${reply.error}`);
    return reply;
  };
  await once(child, "message");
  const { node: a, dir } = await newSubmitter();
  const { invite } = await a.pairing.invite("trusted", 60_000);
  const { peerId } = await ask<{ peerId: string }>({ join: invite });
  const executorCpuMs = async (): Promise<number> => (await ask<{ cpuMs: number }>({ cpu: true })).cpuMs;
  return {
    submitter: a,
    executorId: peerId,
    cpuMs: async () => processCpuMs() + (await executorCpuMs()),
    executorCpuMs,
    rawRoundTrips: async (count) => {
      const stream = await a.libp2p.dialProtocol(peerIdFromString(peerId), RAW_ECHO_PROTOCOL);
      const out = await rawRoundTrips(stream, count);
      stream.abort(new Error("done"));
      return out;
    },
    stop: async () => {
      const exited = once(child, "exit");
      child.send({ stop: true } satisfies ExecutorRequest);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
      child.kill("SIGKILL");
      await a.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function routedOnce(pair: RoutedPair): Promise<number> {
  const a = pair.submitter;
  const t0 = performance.now();
  const task = await a.adapter.submitTask({ description: "bench", input: "x", agentId: "echo" }, { route: pair.executorId });
  for await (const u of a.adapter.streamTaskUpdates(task.id)) if (u.status === "completed" || u.status === "failed") break;
  return performance.now() - t0;
}

/** `total` routed tasks, `window` of them in flight at any time. */
async function routedWindow(pair: RoutedPair, total: number, window: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < total) {
        next++;
        await routedOnce(pair);
      }
    }),
  );
}

/** Options of {@link measureRoutedTasks}. */
export interface RoutedOptions {
  /** Tasks run with `window` in flight before anything is measured, as on a node that has been serving a while. */
  warmup: number;
  /** Sequential tasks the p50 is taken from. */
  sequential: number;
  /** Tasks the throughput is taken from, `window` in flight. */
  total: number;
  window: number;
  /** 2: B in a child process, as deployed; 1: both nodes in this process. */
  processes: 1 | 2;
}

async function withPair<T>(processes: 1 | 2, run: (pair: RoutedPair) => Promise<T>): Promise<T> {
  const pair = processes === 2 ? await inTwoProcesses() : await inOneProcess();
  try {
    return await run(pair);
  } finally {
    await pair.stop();
  }
}

/**
 * Routed no-op tasks on 127.0.0.1: A submits `echo` pinned to B and follows it
 * to completion over the task protocol, with B's audit, durable storage and
 * replication to A all running.
 *
 * Latency and throughput each get a fresh pair and its own warm-up, because
 * each phase changes what V8 has optimised for the other: throughput measured
 * right after a run of lone tasks is lower for the next couple of thousand
 * tasks, and lone tasks right after a burst are slower too. The first pair also
 * reports the p50 of its first tasks, before any warm-up (`_cold`), and the raw
 * round trip between the two processes.
 */
export async function measureRoutedTasks(options: RoutedOptions): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  await withPair(options.processes, async (pair) => {
    // Just paired, before V8 has optimised the hot path: each task costs about twice the CPU then.
    const cold: number[] = [];
    for (let i = 0; i < sized(200, 10); i++) cold.push(await routedOnce(pair));
    await routedWindow(pair, options.warmup, options.window);
    for (let i = 0; i < sized(200, 10); i++) await routedOnce(pair);
    const latencies: number[] = [];
    for (let i = 0; i < options.sequential; i++) latencies.push(await routedOnce(pair));
    figures.routed_task_p50_ms = percentile(latencies, 50);
    figures.routed_task_p99_ms = percentile(latencies, 99);
    figures.routed_task_p50_ms_cold = percentile(cold, 50);
    if (pair.rawRoundTrips) {
      const trips = sized(2_000, 100);
      const raw = await pair.rawRoundTrips(trips);
      figures.raw_stream_rtt_p50_ms = percentile(raw.slice(trips / 10), 50);
    }
  });
  await withPair(options.processes, async (pair) => {
    await routedWindow(pair, options.warmup, options.window);
    const cpu0 = await pair.cpuMs();
    const executorCpu0 = await pair.executorCpuMs?.();
    const t0 = performance.now();
    await routedWindow(pair, options.total, options.window);
    const seconds = (performance.now() - t0) / 1000;
    const cpuMs = (await pair.cpuMs()) - cpu0;
    figures.routed_tasks_per_sec = Math.round(options.total / seconds);
    figures.routed_cpu_ms_per_task = Math.round((cpuMs / options.total) * 1000) / 1000;
    // Which side bounds throughput: each process has at most one core's worth of main thread.
    if (executorCpu0 !== undefined) {
      const executorCpuMs = (await pair.executorCpuMs!()) - executorCpu0;
      figures.routed_executor_cpu_ms_per_task = Math.round((executorCpuMs / options.total) * 1000) / 1000;
    }
  });
  return figures;
}
