import { describe, expect } from "vitest";
import { at, itRunsEachBench, type BenchCase } from "../helpers/bench-smoke.js";

/** The benchmarks of one process or two at smoke size (see test/helpers/bench-smoke.ts); the meshes' are in smoke-mesh.test.ts, reach in smoke-reach.test.ts. */

const CASES: readonly BenchCase[] = [
  { name: "engine", timeoutMs: 60_000, figures: ["throughputTasksPerSec", "cpuMsPerTask", "latencyMs.p50", "flatness.ratio", "coldStart.ms", "coldStart.rssMb", "progress.uncoalesced.cpuUsPerReport", "progress.coalesced.historyEntries", "progress.cpuRatio"] },
  { name: "exec", timeoutMs: 60_000, figures: ["spawnTrue.p50Ms", "shellExecTask.p50Ms", "ratio.taskP50"] },
  { name: "identity", timeoutMs: 60_000, figures: ["verification.ratio", "trust.lookupMsAfterWarmup"] },
  { name: "security", timeoutMs: 60_000, figures: ["permissionChecksPerSecond", "auditAppendsPerSecond", "verifyRatio"] },
  { name: "http", timeoutMs: 60_000, figures: ["ratio.p50HttpOverBare", "ratio.throughputHttpOverBare"] },
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
      "ship.floorMs",
      "ship.floorRatioOverTcp",
      "ship.boundMs",
      "ship.boundRatioOverTcp",
      "reship.bytesReceived",
      "reship.bytesOverTree",
      "snapshot.warmMs",
      "snapshot.gitStatusMs",
      "snapshot.ratio",
      "apply.fetchMs",
      "apply.applyMs",
      "apply.patchBytes",
    ],
    check: (result) => {
      // The first ship moved the whole tree, the second far less: the figures count real transfers.
      expect(at(result, "ship.bytesReceived")).toBeGreaterThanOrEqual(at(result, "tree.shippedBytes") as number);
      expect(at(result, "reship.bytesReceived")).toBeLessThan((at(result, "tree.shippedBytes") as number) / 10);
    },
  },
  { name: "registry", timeoutMs: 60_000, figures: ["publishMs", "installAllMs", "installPerMemberMs.p50", "rawStreamOneCopyMs", "rawStreamAllCopiesMs", "ratio.installAllOverRawAllCopies", "wireBytesFromPublisher"] },
  { name: "workflow", timeoutMs: 60_000, figures: ["chain.workflowMs", "chain.directMs", "chain.ratio", "fanOut.workflowMs", "fanOut.directMs", "fanOut.ratio"] },
];

describe("benchmarks at smoke size", () => itRunsEachBench(CASES));
