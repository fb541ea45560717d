import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatRequirements, parseRemoteStep, parseRequirements } from "../../src/contract/requirements.js";
import type { TaskRequirements } from "../../src/contract/types.js";
import { placeWaiting, type PlacementCandidate, type WaitingTask } from "../../node/scheduling/placement.js";

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
    Object.entries(t.requires?.resources ?? {}).every(([k, v]) => (c.resources[k] ?? 0) >= v)
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

  const arbCandidate = fc.record({
    peerId: fc.constantFrom("p1", "p2", "p3", "p4", "p5"),
    local: fc.boolean(),
    agents: fc.subarray(["echo", "shell", "llm"]).map((a) => new Set(a)),
    labels: fc.subarray(["gpu", "macos", "arm"]).map((a) => new Set(a)),
    resources: fc.record({ cpu: fc.integer({ min: 0, max: 16 }) }),
    freeSlots: fc.integer({ min: 0, max: 4 }),
    latencyMs: fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
  });
  const arbTask = fc.record({
    id: fc.uuid(),
    agentId: fc.constantFrom("echo", "shell", "llm", "none"),
    priority: fc.integer({ min: -2, max: 2 }),
    order: fc.integer({ min: 0, max: 1000 }),
    requires: fc.option(fc.record({ labels: fc.subarray(["gpu", "macos"]), resources: fc.record({ cpu: fc.integer({ min: 0, max: 12 }) }) }), { nil: undefined }),
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
      fc.property(arbProblem, fc.integer({ min: 0, max: 1000 }), ([tasks, candidates], seed) => {
        const shuffled = [...candidates].sort((x, y) => ((x.peerId.charCodeAt(1) * seed) % 7) - ((y.peerId.charCodeAt(1) * seed) % 7));
        const a = placeWaiting(tasks, candidates);
        const b = placeWaiting(tasks, shuffled);
        expect(b.placed).toEqual(a.placed);
      }),
    );
  });
});

describe("requirements in text", () => {
  it("reads labels and least amounts, merges repeats, and refuses an item naming it", () => {
    expect(parseRequirements("gpu, cpu>=4,memoryGiB=0.5,cpu>=2")).toEqual({ labels: ["gpu"], resources: { cpu: 4, memoryGiB: 0.5 } });
    expect(() => parseRequirements("gpu,cpu>=x")).toThrow('requires: item 2 "cpu>=x": amount must be a number >= 0');
    expect(() => parseRequirements("gpu,,cpu")).toThrow("item 2");
    expect(() => parseRequirements("has space")).toThrow("item 1");
    expect(parseRemoteStep("remote:auto[gpu,high-memory]")).toEqual({ route: "auto", requires: { labels: ["gpu", "high-memory"] } });
    expect(parseRemoteStep("remote:auto")).toEqual({ route: "auto" });
    expect(() => parseRemoteStep("remote:auto[gpu")).toThrow(/remote:<auto\|peer-id>/);
  });

  it("reads back what it writes", () => {
    const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/);
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 5 }), fc.dictionary(name, fc.integer({ min: 0, max: 1000 }), { maxKeys: 5 }), (labels, resources) => {
        const clean = labels.filter((l) => !(l in resources));
        const req: TaskRequirements = {};
        if (clean.length > 0) req.labels = clean;
        if (Object.keys(resources).length > 0) req.resources = resources;
        fc.pre(clean.length + Object.keys(resources).length > 0);
        expect(parseRequirements(formatRequirements(req))).toEqual(req);
      }),
    );
  });
});
