import { describe, expect, it } from "vitest";
import { namespacesUnavailable } from "../../bench/reach/netns.js";
import { at, expectPositive, runBench } from "../helpers/bench-smoke.js";

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
