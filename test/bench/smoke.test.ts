import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { namespacesUnavailable } from "../../bench/reach/netns.js";
import { runScript } from "../helpers/cli.js";

/**
 * Every `npm run bench:*` at smoke size (`--smoke`): each still runs its whole
 * path, exits, and prints every figure its issue asks for. The figures of a
 * smoke run measure nothing, so only their presence and sanity are checked.
 */

const BENCH_DIR = fileURLToPath(new URL("../../dist/bench/", import.meta.url));

async function runBench(name: string, timeoutMs: number): Promise<Record<string, unknown>> {
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
function at(value: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((v, k) => (typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined), value);
}

function expectPositive(result: Record<string, unknown>, paths: readonly string[]): void {
  for (const path of paths) {
    const v = at(result, path);
    expect(typeof v === "number" && Number.isFinite(v) && v > 0, `${path} = ${String(v)}`).toBe(true);
  }
}

const CASES: ReadonlyArray<{ name: string; timeoutMs: number; figures: readonly string[] }> = [
  { name: "engine", timeoutMs: 60_000, figures: ["throughputTasksPerSec", "cpuMsPerTask", "latencyMs.p50", "flatness.ratio", "coldStart.ms", "coldStart.rssMb", "progress.uncoalesced.cpuUsPerReport", "progress.coalesced.historyEntries", "progress.cpuRatio"] },
  { name: "exec", timeoutMs: 60_000, figures: ["spawnTrue.p50Ms", "shellExecTask.p50Ms", "ratio.taskP50"] },
  { name: "identity", timeoutMs: 60_000, figures: ["verification.ratio", "trust.lookupMsAfterWarmup"] },
  { name: "security", timeoutMs: 60_000, figures: ["permissionChecksPerSecond", "auditAppendsPerSecond", "verifyRatio"] },
  { name: "http", timeoutMs: 60_000, figures: ["ratio.p50HttpOverBare", "ratio.throughputHttpOverBare"] },
  {
    name: "mesh",
    timeoutMs: 150_000,
    figures: [
      "raw_stream_rtt_p50_ms",
      "framed_channel_rtt_p50_ms",
      "routed_task_p50_ms",
      "routed_task_p50_ms_cold",
      "routed_tasks_per_sec",
      "routed_cpu_ms_per_task",
      "routed_executor_cpu_ms_per_task",
      "raw_stream_rtt_p50_ms_two_processes",
      "routed_p50_over_raw_rtt",
      "routed_task_p50_ms_one_process",
      "routed_tasks_per_sec_one_process",
      "reconnect_sync_ratio",
      "reconnect_sync_unsigned_ratio",
      "reconnect_sync_signed_over_unsigned",
      "capability_lookup_auto_p50_ms",
      "capability_lookup_dht_p50_ms",
      "idle_node_rss_mb",
    ],
  },
  {
    name: "schedule",
    timeoutMs: 90_000,
    figures: ["makespan.ms", "makespan.ratio", "arrivalToStartMs.p50", "queuedThroughput.allStartedMs", "queuedThroughput.tasksPerSec", "routed.p50Ms", "routed.bareAttemptP50Ms", "routed.ratio", "routed.outcomeBeforeDurableP50Ms", "routed.durableCompletionRatio"],
  },
  {
    name: "workspace",
    timeoutMs: 90_000,
    figures: [
      "tree.shippedBytes",
      "ship.toStartMs",
      "ship.transferMs",
      "ship.mbPerSec",
      "ship.tcpCopyMbPerSec",
      "ship.rawLibp2pMbPerSec",
      "ship.ratioOverTcp",
      "ship.ratioOverRawLibp2p",
      "reship.bytesReceived",
      "reship.bytesOverTree",
      "snapshot.warmMs",
      "snapshot.gitStatusMs",
      "snapshot.ratio",
      "apply.fetchMs",
      "apply.applyMs",
      "apply.patchBytes",
    ],
  },
  { name: "registry", timeoutMs: 60_000, figures: ["publishMs", "installAllMs", "installPerMemberMs.p50", "rawStreamOneCopyMs", "rawStreamAllCopiesMs", "ratio.installAllOverRawAllCopies", "wireBytesFromPublisher"] },
  { name: "workflow", timeoutMs: 60_000, figures: ["chain.workflowMs", "chain.directMs", "chain.ratio", "fanOut.workflowMs", "fanOut.directMs", "fanOut.ratio"] },
  { name: "scale", timeoutMs: 90_000, figures: ["live.0.bytesPerChange", "live.0.ratioToIdeal", "live.1.ratioToIdeal", "live.3.ratioToIdeal", "reconnect.0.positionsBytes", "reconnect.1.summariesBytes", "form.0.formedMs", "form.0.routedP50Ms"] },
];

describe("benchmarks at smoke size", () => {
  for (const { name, timeoutMs, figures } of CASES) {
    it(`bench:${name} runs and prints its figures`, { timeout: timeoutMs + 5_000 }, async () => {
      const result = await runBench(name, timeoutMs);
      expect(result.bench).toBe(name);
      expectPositive(result, figures);
      if (name === "mesh") {
        // A lookup that finds nothing would still have a latency.
        expect(result.capability_lookup_auto_found_ratio).toBe(1);
      }
      if (name === "scale") {
        // Every pair of four connected: each change reaches each member once, not once per relay (that was 3x).
        const full = (result.live as Array<Record<string, unknown>>).find((r) => r.topology === "full" && r.n === 4);
        expect(full?.ratioToIdeal).toBeLessThan(1.6);
        // Idle traffic may be nothing at all in a smoke window; only its presence is checked.
        expect(typeof at(result, "idle.0.bytesPerNodePerMinute")).toBe("number");
        expect(typeof at(result, "idle.0.cpuPercentOfACorePerNode")).toBe("number");
        expect(typeof at(result, "idle.0.beyondLibp2pBytesPerNodePerMinute")).toBe("number");
        expect(typeof at(result, "idle.0.libp2pCpuPercentOfACorePerNode")).toBe("number");
        // A reconnect with nothing changed asks since its position: a tenth of comparing summaries, or less.
        const quiet = (result.reconnect as Array<Record<string, number>>).find((r) => r.changed === 0);
        expect(quiet?.positionsBytes).toBeLessThan(quiet!.summariesBytes! / 4);
        // The founder has no agents: every routed task ran on a member.
        expect(at(result, "form.0.routedExecutors")).toBeGreaterThanOrEqual(1);
        expect(typeof at(result, "form.0.idleBytesPerNodePerMinute")).toBe("number");
      }
      if (name === "workspace") {
        // The first ship moved the whole tree, the second far less: the figures count real transfers.
        expect(at(result, "ship.bytesReceived")).toBeGreaterThanOrEqual(at(result, "tree.shippedBytes") as number);
        expect(at(result, "reship.bytesReceived")).toBeLessThan((at(result, "tree.shippedBytes") as number) / 10);
      }
    });
  }
});

// Needs root and `ip netns` (CI has both); elsewhere it is skipped, as the namespace suites are.
describe.skipIf(namespacesUnavailable() !== undefined)("the reach benchmark at smoke size", () => {
  it("bench:reach runs behind cone and symmetric NATs and prints its figures", { timeout: 185_000 }, async () => {
    const result = await runBench("reach", 180_000);
    expect(result.bench).toBe("reach");
    expectPositive(result, ["direct_success_rate_cone", "time_to_direct_p50_ms", "join_to_direct_ms", "rtt_p50_ms_direct", "rtt_p50_ms_relayed", "routed_task_p50_ms_direct", "routed_task_p50_ms_relayed", "output_mb_per_s_direct", "output_mb_per_s_relayed"]);
    expect(result.direct_success_rate_symmetric).toBe(0);
    expect(at(result, "cone.path")).toBe("direct");
    expect(at(result, "symmetric.path")).toBe("relayed");
  });
});
