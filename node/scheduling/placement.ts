import type { TaskRequirements } from "../../src/contract/types.js";

/** A node a waiting task may go to, as the dispatcher sees it on one pass. */
export interface PlacementCandidate {
  peerId: string;
  local: boolean;
  agents: ReadonlySet<string>;
  labels: ReadonlySet<string>;
  resources: Readonly<Record<string, number>>;
  freeSlots: number;
  latencyMs?: number;
}

/** A task waiting for a node. */
export interface WaitingTask {
  id: string;
  agentId: string;
  priority: number;
  order: number;
  requires?: TaskRequirements;
  exclude?: ReadonlySet<string>;
}

/** Where tasks go on one pass, and why the others wait. */
export interface PlacementResult {
  placed: Array<{ taskId: string; peerId: string }>;
  waiting: Map<string, string>;
}

/** Unknown latency ranks as this many ms: behind a measured nearby member, ahead of a far one. */
const UNKNOWN_LATENCY_MS = 50;

/** Each requirement in the words of the reasons (`label gpu`, `resource cpu >= 4`), labels first. */
function requirementTerms(req: TaskRequirements | undefined): Array<{ term: string; met: (c: PlacementCandidate) => boolean }> {
  return [
    ...(req?.labels ?? []).map((l) => ({ term: `label ${l}`, met: (c: PlacementCandidate) => c.labels.has(l) })),
    // Own properties only (undeclared is 0): a resource named `constructor` must not meet Object.prototype.
    ...Object.entries(req?.resources ?? {}).map(([k, v]) => ({
      term: `resource ${k} >= ${v}`,
      met: (c: PlacementCandidate) => (Object.hasOwn(c.resources, k) ? c.resources[k]! : 0) >= v,
    })),
  ];
}

/** Requirements in words for messages: `label gpu, resource cpu >= 4`, or `nothing` when there are none. */
export function describeRequirements(req: TaskRequirements | undefined): string {
  const terms = requirementTerms(req).map((r) => r.term);
  return terms.length === 0 ? "nothing" : terms.join(", ");
}

/**
 * Place waiting tasks, best ranked first, on qualifying candidates with free
 * slots; a pure decision the dispatcher makes on every pass. See
 * docs/scheduling.md for the rules and the reasons a task waits.
 */
export function placeWaiting(tasks: readonly WaitingTask[], candidates: readonly PlacementCandidate[]): PlacementResult {
  const slots = new Map(candidates.map((c) => [c.peerId, c.freeSlots]));
  const latency = (c: PlacementCandidate): number => c.latencyMs ?? UNKNOWN_LATENCY_MS;
  const ranked = [...candidates].sort((a, b) => Number(b.local) - Number(a.local) || latency(a) - latency(b) || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  const result: PlacementResult = { placed: [], waiting: new Map() };
  for (const t of [...tasks].sort((a, b) => b.priority - a.priority || a.order - b.order)) {
    const offering = ranked.filter((c) => c.agents.has(t.agentId) && !(t.exclude?.has(c.peerId) ?? false));
    if (offering.length === 0) {
      result.waiting.set(t.id, `waiting for a member with agent ${t.agentId}`);
      continue;
    }
    const terms = requirementTerms(t.requires);
    const unmet = offering.map((c) => terms.filter((r) => !r.met(c)).map((r) => r.term));
    const qualifying = offering.filter((_, i) => unmet[i]!.length === 0);
    if (qualifying.length === 0) {
      // The candidate missing the fewest requirements, the best ranked among equals: its first gap is the one to fix.
      const closest = unmet.reduce((best, u) => (u.length < best.length ? u : best));
      result.waiting.set(t.id, `infeasible: no known member with agent ${t.agentId} has ${closest[0]!}`);
      continue;
    }
    const free = qualifying.find((c) => slots.get(c.peerId)! > 0);
    if (free === undefined) {
      result.waiting.set(t.id, `waiting for a free slot on ${qualifying.length} member${qualifying.length === 1 ? "" : "s"} that can run it`);
      continue;
    }
    slots.set(free.peerId, slots.get(free.peerId)! - 1);
    result.placed.push({ taskId: t.id, peerId: free.peerId });
  }
  return result;
}
