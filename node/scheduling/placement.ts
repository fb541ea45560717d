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

function unmet(c: PlacementCandidate, req: TaskRequirements | undefined): string | undefined {
  for (const l of req?.labels ?? []) if (!c.labels.has(l)) return `label ${l}`;
  for (const [k, v] of Object.entries(req?.resources ?? {})) if ((c.resources[k] ?? 0) < v) return `resource ${k} >= ${v}`;
  return undefined;
}

/** Place waiting tasks, best ranked first, on qualifying candidates with free slots. */
export function placeWaiting(tasks: readonly WaitingTask[], candidates: readonly PlacementCandidate[]): PlacementResult {
  const slots = new Map(candidates.map((c) => [c.peerId, c.freeSlots]));
  const ranked = [...candidates].sort((a, b) => Number(b.local) - Number(a.local) || (a.latencyMs ?? 50) - (b.latencyMs ?? 50) || (a.peerId < b.peerId ? -1 : 1));
  const result: PlacementResult = { placed: [], waiting: new Map() };
  for (const t of [...tasks].sort((a, b) => b.priority - a.priority || a.order - b.order)) {
    const offering = ranked.filter((c) => c.agents.has(t.agentId) && !t.exclude?.has(c.peerId));
    if (offering.length === 0) {
      result.waiting.set(t.id, `waiting for a member with agent ${t.agentId}`);
      continue;
    }
    const qualifying = offering.filter((c) => unmet(c, t.requires) === undefined);
    if (qualifying.length === 0) {
      result.waiting.set(t.id, `infeasible: no known member with agent ${t.agentId} has ${unmet(offering[0]!, t.requires)!}`);
      continue;
    }
    const free = qualifying.find((c) => (slots.get(c.peerId) ?? 0) > 0);
    if (free === undefined) {
      result.waiting.set(t.id, `waiting for a free slot on ${qualifying.length} member${qualifying.length === 1 ? "" : "s"} that can run it`);
      continue;
    }
    slots.set(free.peerId, slots.get(free.peerId)! - 1);
    result.placed.push({ taskId: t.id, peerId: free.peerId });
  }
  return result;
}
