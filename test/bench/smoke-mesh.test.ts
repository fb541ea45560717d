import { describe, expect } from "vitest";
import { at, itRunsEachBench, type BenchCase } from "../helpers/bench-smoke.js";

/** The benchmarks that form meshes of several nodes, at smoke size (see test/helpers/bench-smoke.ts): a file of their own, so that they run beside the others. */

const CASES: readonly BenchCase[] = [
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
    check: (result) => {
      // A lookup that finds nothing would still have a latency.
      expect(result.capability_lookup_auto_found_ratio).toBe(1);
    },
  },
  {
    name: "schedule",
    timeoutMs: 90_000,
    figures: ["makespan.ms", "makespan.ratio", "arrivalToStartMs.p50", "queuedThroughput.allStartedMs", "queuedThroughput.tasksPerSec", "routed.p50Ms", "routed.bareAttemptP50Ms", "routed.ratio", "routed.outcomeBeforeDurableP50Ms", "routed.durableCompletionRatio"],
  },
  {
    name: "scale",
    timeoutMs: 90_000,
    figures: ["live.0.bytesPerChange", "live.0.ratioToIdeal", "live.1.ratioToIdeal", "live.3.ratioToIdeal", "reconnect.0.positionsBytes", "reconnect.1.summariesBytes", "form.0.formedMs", "form.0.routedP50Ms"],
    check: (result) => {
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
    },
  },
];

describe("mesh benchmarks at smoke size", () => itRunsEachBench(CASES));
