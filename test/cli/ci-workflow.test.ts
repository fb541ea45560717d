import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { SCREENSHOTS } from "../helpers/screenshots.js";

type Step = { uses?: string; run?: string; if?: string; with?: Record<string, unknown> };
type Workflow = { jobs: Record<string, { container?: { image?: string }; steps: Step[] }> };

describe("CI workflow", () => {
  const workflow = parse(readFileSync(new URL("../../.github/workflows/ci.yml", import.meta.url), "utf8")) as Workflow;
  const steps = workflow.jobs.test!.steps;

  it("runs .ci/run on Node 20 under Debian (whose chromium the browser tests drive)", () => {
    expect(workflow.jobs.test!.container?.image).toMatch(/^node:20-bookworm/);
    expect(steps.some((s) => s.run?.trim() === ".ci/run")).toBe(true);
  });

  it("keeps the folder the browser tests write screenshots to, after the tests and whether they passed or not", () => {
    const upload = steps.findIndex((s) => s.uses?.startsWith("actions/upload-artifact@") === true);
    expect(upload).toBeGreaterThan(steps.findIndex((s) => s.run?.trim() === ".ci/run"));
    expect(steps[upload]).toMatchObject({ if: "always()", with: { path: SCREENSHOTS } });
    expect(readFileSync(new URL("../../.ci/run", import.meta.url), "utf8")).toMatch(/^rm -rf test-results$/m);
  });
});
