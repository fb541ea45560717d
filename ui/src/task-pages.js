import { useEffect, useRef, useState } from "preact/hooks";
import { useSession } from "./session.js";

/** A task's place in the node's listing: what `before` takes to list the tasks older than it. */
export const positionOf = (t) => `${String(Date.parse(t.createdAt)).padStart(15, "0")}:${t.id}`;

/**
 * Puts a page the node answered in place of what the list held between the page's bounds:
 * `upper` (exclusive; null for the newest) and `lower` (the page's `next`, inclusive; null for the oldest).
 * A task that left the filter meanwhile is gone from that range, a new one is in it.
 */
function mergeRange(list, page, upper) {
  const lower = page.next ?? null;
  const above = upper === null ? [] : list.tasks.filter((t) => positionOf(t) >= upper);
  const below = lower === null ? [] : list.tasks.filter((t) => positionOf(t) < lower);
  const next = list.next === null || lower === null ? null : list.next < lower ? list.next : lower;
  return { tasks: [...above, ...page.tasks, ...below], next };
}

/**
 * The tasks matching `filters`, newest first, loaded from the node a page at a time
 * (`more()` asks for the next older page), with the newest `pollSize` and the rows in view
 * (`watch(first, count)`) asked again every `pollMs` so changes and new tasks arrive.
 * `cursor` is undefined until the first page is in, null once the oldest task is.
 */
export function useTaskPages(filters, { pageSize = 200, pollSize = 50, pollMs = 2000 } = {}) {
  const { call, fail } = useSession();
  const [list, setList] = useState({ tasks: [], next: undefined });
  const state = useRef({ list, loading: false, watched: [0, 0], generation: 0 });
  state.current.list = list;

  const query = (before, limit) => {
    const params = new URLSearchParams({ limit: String(limit) });
    if (before !== null) params.set("before", before);
    if (filters.status) params.set("status", filters.status);
    if (filters.session) params.set("sessionId", filters.session);
    if (filters.agent) params.set("agentId", filters.agent);
    if (filters.executor) params.set("executor", filters.executor);
    return call(`/v1/tasks?${params}`);
  };
  // A page answered for filters the list no longer shows is dropped.
  const load = async (before, limit) => {
    const generation = state.current.generation;
    const page = await query(before, limit);
    if (generation === state.current.generation) setList((current) => mergeRange(current, page, before));
  };

  useEffect(() => {
    state.current.generation += 1;
    setList({ tasks: [], next: undefined });
    const refresh = () => {
      const [first, count] = state.current.watched;
      const tasks = state.current.list.tasks;
      // Older pages come through `more()` as the list needs them; each round asks again for the newest few and the rows in view.
      const asked = [load(null, pollSize)];
      if (first + count > pollSize && first > 0 && first < tasks.length) asked.push(load(positionOf(tasks[first - 1]), count));
      return Promise.all(asked).catch(fail);
    };
    refresh();
    const timer = setInterval(refresh, pollMs);
    return () => clearInterval(timer);
  }, [filters.status, filters.session, filters.agent, filters.executor]);

  const more = () => {
    const { list: now } = state.current;
    if (state.current.loading || typeof now.next !== "string") return;
    state.current.loading = true;
    load(now.next, pageSize).catch(fail).finally(() => (state.current.loading = false));
  };
  const watch = (first, count) => (state.current.watched = [first, count]);
  return { tasks: list.tasks, cursor: list.next, more, watch };
}
