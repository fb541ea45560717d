import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkWorkflow, newWorkflowRecord, stepsToStart, workflowOutcome, workflowOutcomeAfter, type StepDraft } from "../../src/workflows/index.js";

describe("workflow progress", () => {
  it("property: whatever order tries end in, a step starts only after what it depends on completed, and the workflow ends failed exactly when a step that may not fail failed; what a step's end lets start is found among the steps depending on it, and how the workflow ends from what that end changed", () => {
    const scenario = fc.integer({ min: 1, max: 12 }).chain((n) =>
      fc.record({
        n: fc.constant(n),
        edges: fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: 30 }),
        fails: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        optional: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        picks: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
      }),
    );
    fc.assert(
      fc.property(scenario, ({ n, edges, fails, optional, picks }) => {
        const deps = new Map<number, Set<number>>([...Array(n).keys()].map((i) => [i, new Set<number>()]));
        for (const [x, y] of edges) if (x !== y) deps.get(Math.max(x, y))!.add(Math.min(x, y));
        const drafts: StepDraft[] = [...Array(n).keys()].map((i) => ({ id: `s${i}`, agent: "echo", input: "x", dependsOn: [...deps.get(i)!].map((d) => `s${d}`), continueOnFailure: optional[i]! }));
        const def = checkWorkflow({ name: "w", steps: drafts });
        const record = newWorkflowRecord("w1", def, "", 0);
        const running: string[] = [];
        const starts = new Map<string, number>();
        let endedBefore = 0;
        for (let turn = 0; turn < 200 && record.status === "running"; turn++) {
          for (const id of stepsToStart(record, 0)) {
            const step = def.steps.find((s) => s.id === id)!;
            for (const d of step.dependsOn) expect(["completed", "failed"]).toContain(record.steps[d]!.status);
            record.steps[id]!.status = "running";
            starts.set(id, (starts.get(id) ?? 0) + 1);
            running.push(id);
          }
          const outcome = workflowOutcome(record);
          if (outcome !== undefined) {
            record.status = outcome.status;
            break;
          }
          if (running.length === 0) break;
          const [id] = running.splice(picks[turn % picks.length]! % running.length, 1);
          record.steps[id!]!.status = fails[Number(id!.slice(1))] ? "failed" : "completed";
          expect(stepsToStart(record, 0, def.steps.filter((s) => s.dependsOn.includes(id!)))).toEqual(stepsToStart(record, 0));
          const after = workflowOutcomeAfter(record, def.steps.find((s) => s.id === id)!, endedBefore);
          expect(after.outcome).toEqual(workflowOutcome(record));
          endedBefore = after.endedBefore;
        }
        for (const count of starts.values()) expect(count).toBe(1);
        const mandatoryFailed = def.steps.some((s) => record.steps[s.id]!.status === "failed" && !s.continueOnFailure);
        expect(record.status).toBe(mandatoryFailed ? "failed" : "completed");
      }),
      { numRuns: 300 },
    );
  });
});
