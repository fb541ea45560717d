import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeRequirements, placeWaiting, type PlacementCandidate, type WaitingTask } from "../../node/scheduling/placement.js";

const candidate = (peerId: string, freeSlots: number, more: Partial<PlacementCandidate> = {}): PlacementCandidate => ({
  peerId,
  local: false,
  agents: new Set(["echo"]),
  labels: new Set(),
  resources: {},
  freeSlots,
  ...more,
});
const task = (id: string, order: number, more: Partial<WaitingTask> = {}): WaitingTask => ({ id, agentId: "echo", priority: 0, order, ...more });

function qualifies(c: PlacementCandidate, t: WaitingTask): boolean {
  return (
    c.agents.has(t.agentId) &&
    !(t.exclude?.has(c.peerId) ?? false) &&
    (t.requires?.labels ?? []).every((l) => c.labels.has(l)) &&
    Object.entries(t.requires?.resources ?? {}).every(([k, v]) => (Object.hasOwn(c.resources, k) ? c.resources[k]! : 0) >= v)
  );
}

describe("placement", () => {
  it("prefers this node, then the lowest latency; says why the rest wait", () => {
    const r = placeWaiting(
      [task("a", 1), task("b", 2), task("c", 3), task("gpu", 4, { requires: { labels: ["gpu"] } }), task("big", 5, { requires: { resources: { cpu: 16 } } }), task("x", 6, { agentId: "other" })],
      [candidate("far", 1, { latencyMs: 80 }), candidate("near", 1, { latencyMs: 2, resources: { cpu: 8 } }), candidate("self", 1, { local: true })],
    );
    expect(r.placed).toEqual([
      { taskId: "a", peerId: "self" },
      { taskId: "b", peerId: "near" },
      { taskId: "c", peerId: "far" },
    ]);
    expect(Object.fromEntries(r.waiting)).toEqual({
      gpu: "infeasible: no known member with agent echo has label gpu",
      big: "infeasible: no known member with agent echo has resource cpu >= 16",
      x: "waiting for a member with agent other",
    });
    expect(placeWaiting([task("d", 1)], [candidate("near", 0)]).waiting.get("d")).toBe("waiting for a free slot on 1 member that can run it");
  });

  it("goes by priority, then submission order, and lets lower-ranked work fill slots the higher-ranked cannot use", () => {
    const r = placeWaiting(
      [task("late-high", 9, { priority: 5 }), task("early", 1), task("needs-gpu", 0, { priority: 9, requires: { labels: ["gpu"] } })],
      [candidate("one", 1)],
    );
    expect(r.placed).toEqual([{ taskId: "late-high", peerId: "one" }]);
    expect(r.waiting.get("early")).toMatch(/free slot/);
  });

  it("leaves out the members a task excludes, and says so as if they were absent", () => {
    const r = placeWaiting([task("a", 1, { exclude: new Set(["self"]) }), task("b", 2, { exclude: new Set(["self", "far"]) })], [candidate("self", 2, { local: true }), candidate("far", 2)]);
    expect(r.placed).toEqual([{ taskId: "a", peerId: "far" }]);
    expect(r.waiting.get("b")).toBe("waiting for a member with agent echo");
  });

  it("ranks an unmeasured member as 50 ms away, and breaks ties by the lowest peer id", () => {
    const one = (candidates: PlacementCandidate[]): string | undefined => placeWaiting([task("t", 1)], candidates).placed[0]?.peerId;
    expect(one([candidate("measured", 1, { latencyMs: 60 }), candidate("unknown", 1)])).toBe("unknown");
    expect(one([candidate("unknown", 1), candidate("measured", 1, { latencyMs: 40 })])).toBe("measured");
    expect(one([candidate("p2", 1, { latencyMs: 50 }), candidate("p3", 1), candidate("p1", 1)])).toBe("p1");
    expect(one([candidate("near", 1, { latencyMs: 1 }), candidate("self", 1, { local: true, latencyMs: 500 })])).toBe("self");
  });

  it("needs every label and at least each amount; a full qualifying member makes a task wait while lower-ranked work fills other members", () => {
    const gpu = candidate("gpu", 1, { labels: new Set(["gpu", "cuda"]), resources: { cpu: 4, memoryGiB: 0.5 } });
    const plain = candidate("plain", 3, { resources: { cpu: 64 } });
    const r = placeWaiting(
      [
        task("exact", 1, { requires: { labels: ["gpu", "cuda"], resources: { cpu: 4, memoryGiB: 0.5 } } }),
        task("second-gpu", 2, { priority: 0, requires: { labels: ["gpu"] } }),
        task("more-memory", 3, { requires: { labels: ["gpu"], resources: { memoryGiB: 0.75 } } }),
        task("any", 4),
        task("any-2", 5),
      ],
      [gpu, plain],
    );
    expect(r.placed).toEqual([
      { taskId: "exact", peerId: "gpu" },
      { taskId: "any", peerId: "plain" },
      { taskId: "any-2", peerId: "plain" },
    ]);
    expect(r.waiting.get("second-gpu")).toBe("waiting for a free slot on 1 member that can run it");
    expect(r.waiting.get("more-memory")).toBe("infeasible: no known member with agent echo has resource memoryGiB >= 0.75");
    expect(placeWaiting([task("t", 1)], [candidate("a", 0), candidate("b", 0), candidate("c", 0, { agents: new Set(["other"]) })]).waiting.get("t")).toBe(
      "waiting for a free slot on 2 members that can run it",
    );
  });

  it("names the first gap of the member that comes closest, else of the best-ranked member", () => {
    const requires = { labels: ["gpu", "macos"], resources: { cpu: 4 } };
    const lacksAll = candidate("near", 1, { local: true });
    const lacksCpu = candidate("far", 1, { latencyMs: 900, labels: new Set(["gpu", "macos"]) });
    const lacksMacos = candidate("mid", 1, { latencyMs: 100, labels: new Set(["gpu"]), resources: { cpu: 8 } });
    expect(placeWaiting([task("t", 1, { requires })], [lacksAll, lacksCpu]).waiting.get("t")).toBe("infeasible: no known member with agent echo has resource cpu >= 4");
    expect(placeWaiting([task("t", 1, { requires })], [lacksCpu, lacksMacos, lacksAll]).waiting.get("t")).toBe("infeasible: no known member with agent echo has label macos");
    expect(placeWaiting([task("t", 1, { requires })], [candidate("b", 1), lacksAll]).waiting.get("t")).toBe("infeasible: no known member with agent echo has label gpu");
  });

  it("counts only a member's own resources: a resource named like an Object method is not met by the prototype", () => {
    const r = placeWaiting([task("t", 1, { requires: { resources: { constructor: 1, toString: 1 } } })], [candidate("bare", 1)]);
    expect(r.placed).toEqual([]);
    expect(r.waiting.get("t")).toBe("infeasible: no known member with agent echo has resource constructor >= 1");
    expect(placeWaiting([task("t", 1, { requires: { resources: { toString: 1 } } })], [candidate("has", 1, { resources: { toString: 2 } })]).placed).toEqual([{ taskId: "t", peerId: "has" }]);
    // An undeclared resource counts as 0, which a least amount of 0 is.
    expect(placeWaiting([task("t", 1, { requires: { resources: { constructor: 0 } } })], [candidate("bare", 1)]).placed).toEqual([{ taskId: "t", peerId: "bare" }]);
  });

  it("describes requirements in the words of its reasons", () => {
    expect(describeRequirements({ labels: ["gpu", "macos"], resources: { cpu: 4, memoryGiB: 0.5 } })).toBe("label gpu, label macos, resource cpu >= 4, resource memoryGiB >= 0.5");
    expect(describeRequirements({})).toBe("nothing");
    expect(describeRequirements(undefined)).toBe("nothing");
  });

  const arbCandidate = fc.record({
    peerId: fc.constantFrom("p1", "p2", "p3", "p4", "p5"),
    local: fc.boolean(),
    agents: fc.subarray(["echo", "shell", "llm"]).map((a) => new Set(a)),
    labels: fc.subarray(["gpu", "macos", "arm"]).map((a) => new Set(a)),
    resources: fc.record({ cpu: fc.integer({ min: 0, max: 16 }), memoryGiB: fc.constantFrom(0.25, 0.5, 1) }, { requiredKeys: [] }),
    freeSlots: fc.integer({ min: 0, max: 4 }),
    latencyMs: fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
  });
  const arbTask = fc.record({
    id: fc.uuid(),
    agentId: fc.constantFrom("echo", "shell", "llm", "none"),
    priority: fc.integer({ min: -2, max: 2 }),
    order: fc.integer({ min: 0, max: 1000 }),
    requires: fc.option(
      fc.record({
        labels: fc.subarray(["gpu", "macos"]),
        resources: fc.record({ cpu: fc.integer({ min: 0, max: 12 }), memoryGiB: fc.constantFrom(0.5, 0.75), toString: fc.constant(1) }, { requiredKeys: [] }),
      }),
      { nil: undefined },
    ),
    exclude: fc.option(fc.subarray(["p1", "p2"]).map((a) => new Set(a)), { nil: undefined }),
  });
  const arbProblem = fc.tuple(fc.uniqueArray(arbTask, { selector: (t) => t.id, maxLength: 20 }), fc.uniqueArray(arbCandidate, { selector: (c) => c.peerId, maxLength: 5 }));
  const rank = (t: WaitingTask): [number, number] => [-t.priority, t.order];
  const before = (x: WaitingTask, y: WaitingTask): boolean => rank(x)[0] < rank(y)[0] || (rank(x)[0] === rank(y)[0] && rank(x)[1] < rank(y)[1]);

  it("never gives a node more than its free slots, places only where a task qualifies, and accounts for every task once", () => {
    fc.assert(
      fc.property(arbProblem, ([tasks, candidates]) => {
        const r = placeWaiting(tasks, candidates);
        const given = new Map<string, number>();
        for (const p of r.placed) {
          given.set(p.peerId, (given.get(p.peerId) ?? 0) + 1);
          expect(qualifies(candidates.find((c) => c.peerId === p.peerId)!, tasks.find((t) => t.id === p.taskId)!)).toBe(true);
        }
        for (const c of candidates) expect(given.get(c.peerId) ?? 0).toBeLessThanOrEqual(c.freeSlots);
        const seen = [...r.placed.map((p) => p.taskId), ...r.waiting.keys()].sort();
        expect(seen).toEqual(tasks.map((t) => t.id).sort());
      }),
    );
  });

  it("never inverts priority: a waiting task had no qualifying node that a lower-ranked task was given", () => {
    fc.assert(
      fc.property(arbProblem, ([tasks, candidates]) => {
        const r = placeWaiting(tasks, candidates);
        for (const id of r.waiting.keys()) {
          const waiting = tasks.find((t) => t.id === id)!;
          for (const p of r.placed) {
            const other = tasks.find((t) => t.id === p.taskId)!;
            if (before(waiting, other)) expect(qualifies(candidates.find((c) => c.peerId === p.peerId)!, waiting)).toBe(false);
          }
        }
      }),
    );
  });

  it("does not depend on the order candidates are listed in", () => {
    fc.assert(
      fc.property(
        arbProblem.chain(([tasks, candidates]) => fc.tuple(fc.constant(tasks), fc.constant(candidates), fc.shuffledSubarray(candidates, { minLength: candidates.length }))),
        ([tasks, candidates, shuffled]) => {
          const a = placeWaiting(tasks, candidates);
          const b = placeWaiting(tasks, shuffled);
          expect(b.placed).toEqual(a.placed);
          expect([...b.waiting].sort()).toEqual([...a.waiting].sort());
        },
      ),
    );
  });
});
