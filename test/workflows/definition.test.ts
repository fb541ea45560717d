import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { draftOf } from "../../src/workflows/definition.js";
import { checkWorkflow, fillStepInput, parseTarget, parseWorkflowFile, readWorkflowSource, targetOptions, workflowTemplates, type StepDraft } from "../../src/workflows/index.js";
import { refusal } from "../helpers/refusal.js";

const step = (id: string, more: Partial<StepDraft> = {}): StepDraft => ({ id, agent: "echo", input: `do ${id}`, ...more });

describe("workflow definitions", () => {
  it.each([
    ["no steps", { name: "w", steps: [] }, "steps", /at least one step/],
    ["a duplicate id", { name: "w", steps: [step("a"), step("a")] }, "steps[1].id", /also the id of steps\[0\]/],
    ["an id with a slash", { name: "w", steps: [step("a/b")] }, "steps[0].id", /characters of/],
    ["an unknown dependency", { name: "w", steps: [step("a", { dependsOn: ["b"] })] }, "steps[0].dependsOn[0]", /not the id of a step/],
    ["a step depending on itself", { name: "w", steps: [step("a", { dependsOn: ["a"] })] }, "steps[0].dependsOn[0]", /itself/],
    ["a cycle", { name: "w", steps: [step("a", { dependsOn: ["c"] }), step("b", { dependsOn: ["a"] }), step("c", { dependsOn: ["b"] })] }, "steps[0].dependsOn", /cycle: a -> c -> b -> a/],
    ["an output of a step not depended on", { name: "w", steps: [step("a"), step("b", { input: "use ${steps.a.output}" })] }, "steps[1].input", /does not depend on/],
    ["an output of no step", { name: "w", steps: [step("a", { input: "use ${steps.zz.output}" })] }, "steps[0].input", /names no step/],
    ["an unknown reference", { name: "w", steps: [step("a", { input: "use ${env.HOME}" })] }, "steps[0].input", /is not \$\{input\}/],
    ["a bad target", { name: "w", steps: [step("a", { target: "somewhere" })] }, "steps[0].target", /is not local, remote:auto/],
    ["a bad label", { name: "w", steps: [step("a", { target: "remote:auto[gpu,bad label]" })] }, "steps[0].target", /label "bad label"/],
    ["zero attempts", { name: "w", steps: [step("a", { retry: { attempts: 0 } })] }, "steps[0].retry.attempts", /integer from 1/],
    ["a negative timeout", { name: "w", steps: [step("a", { timeoutMs: -1 })] }, "steps[0].timeoutMs", /more than 0/],
  ])("refuses %s, naming the field", (_what, draft, field, message) => {
    const r = refusal(() => checkWorkflow(draft));
    expect(r.field).toBe(field);
    expect(r.message).toMatch(message);
  });

  it("reads upstream targets and turns them into submit options", () => {
    expect(targetOptions(parseTarget("local", "t"))).toEqual({ route: "local" });
    expect(targetOptions(parseTarget("remote:auto", "t"))).toEqual({ route: "auto" });
    expect(targetOptions(parseTarget("remote:auto[gpu, high-memory]", "t"))).toEqual({ route: "auto", requires: { labels: ["gpu", "high-memory"] } });
    expect(targetOptions(parseTarget("remote:12D3KooWabc", "t"))).toEqual({ route: "12D3KooWabc" });
  });

  it("fills inputs from the workflow's input and earlier outputs, and keeps $${ literal", () => {
    const def = checkWorkflow({ name: "w", steps: [step("a"), step("b", { dependsOn: ["a"], input: "from ${steps.a.output} for ${input.who} in $${HOME}" })] });
    const b = def.steps.find((s) => s.id === "b")!;
    expect(fillStepInput(b.input, { input: { who: "me" }, outputs: new Map([["a", "A!"]]) }, "f")).toBe("from A! for me in ${HOME}");
    expect(refusal(() => fillStepInput(b.input, { input: {}, outputs: new Map([["a", "A!"]]) }, "steps.b.input")).message).toMatch(/no value "who"/);
  });

  it("property: any graph without cycles is accepted, ordered so each step follows what it depends on; adding a back edge is refused as a cycle", () => {
    const graphs = fc.integer({ min: 1, max: 25 }).chain((n) =>
      fc.tuple(
        fc.constant(n),
        fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: 60 }),
        fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
      ),
    );
    fc.assert(
      fc.property(graphs, ([n, edges, order]) => {
        // An edge i -> j (j depends on i) only where i < j keeps the graph acyclic; steps are declared in a shuffled order.
        const deps = new Map<number, Set<number>>([...Array(n).keys()].map((i) => [i, new Set<number>()]));
        for (const [x, y] of edges) if (x !== y) deps.get(Math.max(x, y))!.add(Math.min(x, y));
        const drafts = order.map((i) => step(`s${i}`, { dependsOn: [...deps.get(i)!].map((d) => `s${d}`) }));
        const def = checkWorkflow({ name: "w", steps: drafts });
        const position = new Map(def.steps.map((s, k) => [s.id, k]));
        for (const s of def.steps) for (const d of s.dependsOn) expect(position.get(d)!).toBeLessThan(position.get(s.id)!);
        const withEdge = [...deps.entries()].find(([, ds]) => ds.size > 0);
        if (withEdge !== undefined) {
          const [j, ds] = withEdge;
          const i = [...ds][0]!;
          const cyclic = drafts.map((d) => (d.id === `s${i}` ? { ...d, dependsOn: [...(d.dependsOn ?? []), `s${j}`] } : d));
          expect(refusal(() => checkWorkflow({ name: "w", steps: cyclic })).message).toMatch(/cycle/);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("property: a definition's draft checks back into the same definition (the six templates too)", () => {
    for (const name of workflowTemplates()) {
      const { file, text } = readWorkflowSource(name, "/nonexistent");
      const def = parseWorkflowFile(text, file);
      expect(checkWorkflow(draftOf(def))).toEqual(def);
    }
    const steps = fc.integer({ min: 1, max: 8 }).chain((n) =>
      fc.tuple(
        ...Array.from({ length: n }, (_, i) =>
          fc.record(
            {
              id: fc.constant(`s${i}`),
              agent: fc.constantFrom("echo", "code-reviewer"),
              description: fc.constantFrom(`s${i}`, "review the change", ""),
              input: fc.constantFrom("x", "${input}", "use ${input.topic}", "$${ literal"),
              target: fc.constantFrom("local", "remote:auto", "remote:auto[gpu,high-memory]", "remote:12D3KooWabc"),
              dependsOn: fc.subarray(Array.from({ length: i }, (_, d) => `s${d}`)),
              retry: fc.record({ attempts: fc.integer({ min: 1, max: 5 }), backoffMs: fc.constantFrom(0, 1000, 250), factor: fc.constantFrom(1, 2, 3), maxBackoffMs: fc.constantFrom(60_000, 5000) }, { requiredKeys: [] }),
              timeoutMs: fc.integer({ min: 1, max: 100_000 }),
              continueOnFailure: fc.boolean(),
              approval: fc.constant("required" as const),
              approvalTimeoutMs: fc.constantFrom(3600_000, 5000),
            },
            { requiredKeys: ["id", "input"] },
          ),
        ),
      ),
    );
    fc.assert(
      fc.property(steps, fc.constantFrom("", "what it does"), (drafts, description) => {
        const valid = drafts.map((d) => (d.approval === undefined ? { ...d, approvalTimeoutMs: undefined } : d)).map((d) => Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as unknown as StepDraft);
        const def = checkWorkflow({ name: "w", description, steps: valid });
        expect(checkWorkflow(draftOf(def))).toEqual(def);
      }),
      { numRuns: 300 },
    );
  });
});
