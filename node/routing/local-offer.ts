import type { LocalCore } from "../../src/runtime/local-core.js";
import type { LocalCapabilities } from "./capability-directory.js";

/**
 * What a node's runtime offers now, for its capability record: the agents it can run,
 * their capabilities, and its load (running and queued tasks) against
 * `maxConcurrency`, the labels and resources its configuration declares, and the
 * published agents it does not run with why.
 * Read again whenever the record is signed or served.
 */
export function localOffer(
  core: Pick<LocalCore, "engine" | "agents">,
  maxConcurrency: number,
  placement: { labels?: readonly string[]; resources?: Readonly<Record<string, number>> } = {},
  /** Published agents this node does not run, with why: told to members so they can say where an agent runs and why not. */
  unavailable: () => Record<string, string> = () => ({}),
): () => LocalCapabilities {
  return () => {
    const counters = core.engine.counters();
    // What it can run now: an agent known unavailable (an LLM role without a provider) is left out. A probe
    // that answers later (a provider's health) is not awaited here; the executor refuses the task if it fails.
    const agents = core.agents.list().filter((a) => {
      const now = a.availability();
      if (!(now instanceof Promise)) return now.available;
      now.catch(() => undefined);
      return true;
    });
    const notHere = unavailable();
    return {
      agents: agents.map((a) => a.info.id),
      skills: [],
      capabilities: [...new Set(agents.flatMap((a) => a.info.capabilities))],
      load: counters.runningExecutions + counters.queuedTasks,
      maxConcurrency,
      ...(placement.labels !== undefined && placement.labels.length > 0 && { labels: [...placement.labels] }),
      ...(placement.resources !== undefined && Object.keys(placement.resources).length > 0 && { resources: { ...placement.resources } }),
      ...(Object.keys(notHere).length > 0 && { unavailable: notHere }),
    };
  };
}
