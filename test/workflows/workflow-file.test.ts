import { describe, expect, it } from "vitest";
import { parseWorkflowFile } from "../../src/workflows/index.js";

const GOOD = `name: review
description: plan, then review twice
steps:
  - id: plan
    agent: echo
    input: "plan \${input}"
    retry: { attempts: 3, backoff: 2s, factor: 3 }
    timeout: 10m
  - id: review
    agent: echo
    target: remote:auto[gpu]
    dependsOn: [plan]
    input: "review \${steps.plan.output}"
    continueOnFailure: true
`;

describe("workflow files", () => {
  it("read durations as people write them and upstream targets", () => {
    const def = parseWorkflowFile(GOOD, "review.yaml");
    expect(def.steps.map((s) => s.id)).toEqual(["plan", "review"]);
    expect(def.steps[0]).toMatchObject({ retry: { attempts: 3, backoffMs: 2000, factor: 3 }, timeoutMs: 600_000, target: { kind: "local" } });
    expect(def.steps[1]).toMatchObject({ target: { kind: "auto", labels: ["gpu"] }, continueOnFailure: true, dependsOn: ["plan"] });
  });

  it.each([
    ["a dependency on no step", GOOD.replace("dependsOn: [plan]", "dependsOn: [plam]"), /^review\.yaml:12:\d+: steps\[1\]\.dependsOn\[0\]: "plam" is not the id/],
    ["a duration that is not one", GOOD.replace("timeout: 10m", "timeout: ten minutes"), /^review\.yaml:8:\d+: steps\[0\]\.timeout: "ten minutes" is not a duration/],
    ["an unknown key", GOOD.replace("continueOnFailure: true", "continueOnFailur: true"), /^review\.yaml:14:\d+: steps\[1\]\.continueOnFailur: unknown key/],
    ["a reference to a step not depended on", GOOD.replace("    dependsOn: [plan]\n", ""), /^review\.yaml:\d+:\d+: steps\[1\]\.input: .*does not depend on/],
    ["YAML that does not parse", GOOD.replace("steps:", "steps: ["), /^review\.yaml:\d+:\d+: invalid YAML/],
  ])("refuse %s naming file, line and key", (_what, text, message) => {
    expect(() => parseWorkflowFile(text, "review.yaml")).toThrow(message);
  });
  it("refuse a file whose aliases repeat its text into steps holding more than a file may (a 1 MiB file, 100 MB of inputs), and keep small aliases", () => {
    const big = "x".repeat(200 * 1024);
    const steps = Array.from({ length: 500 }, (_, i) => `  - id: s${i}\n    agent: echo\n    input: ${i < 5 ? `&a${i} "${big}"` : `*a${i % 5}`}`);
    const bomb = `name: bomb\nsteps:\n${steps.join("\n")}\n`;
    expect(Buffer.byteLength(bomb)).toBeLessThan(1024 * 1024);
    expect(() => parseWorkflowFile(bomb, "bomb.yaml")).toThrow(/bomb\.yaml:\d+:\d+: steps: .*inputs of 102400000 bytes, over the 1048576 a workflow file may hold/);
    const shared = parseWorkflowFile("name: shared\nsteps:\n  - id: a\n    input: &same 'do it'\n  - id: b\n    input: *same\n", "shared.yaml");
    expect(shared.steps.map((s) => s.input.source)).toEqual(["do it", "do it"]);
  });
});
