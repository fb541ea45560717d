import { createCommandAgent, type CommandAgentOptions } from "../../src/agents/command-agent.js";
import type { AgentExecutor, AgentRegistry, Availability } from "../../src/agents/executor.js";
import type { CommandAgentConfig } from "../../src/config/agents-config.js";
import { AgentUnavailableError, InvalidInputError } from "../../src/contract/errors.js";
import { parsePublishedAgent, PUBLISHED_AGENT_FILE } from "../../src/registry/agent-publication.js";
import type { AuditBody } from "../../src/security/index.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import type { BlobClient } from "../../protocols/blobs/index.js";
import type { Candidate } from "../routing/capability-directory.js";
import type { Catalogue, Publication } from "./catalogue.js";
import { registryHolder, type ServedTrees } from "./served-trees.js";
import { AGENT_TREE_LIMITS } from "./skill-folder.js";
import { fetchTreeFromAny } from "./tree-fetch.js";

/** What a node needs to take in the agents published to its mesh. */
export interface PublishedAgentsDeps {
  selfId: string;
  catalogue: Pick<Catalogue, "list">;
  store: BlobStore;
  served: ServedTrees;
  client: () => BlobClient | undefined;
  connectedMembers: () => string[];
  /** Ids of the node's own agents (built-in, configured): a publication does not replace one. */
  ownAgentIds: () => string[];
  /** Names of the skills enabled on this node now. */
  skillsHere: () => string[];
  /** The placement labels this node declares. */
  labelsHere: () => readonly string[];
  commandOptions?: CommandAgentOptions;
  record: (body: AuditBody) => Promise<unknown>;
  /** Told when the set of agents or their definitions changed, so the node's offer is signed again. */
  onChange?: () => void;
  onError?: (error: Error) => void;
}

/** A published agent as this node holds it: its publication and whether (and why not) it can run here. */
export interface PublishedAgentState {
  id: string;
  name: string;
  version: string;
  publisher: string;
  available: boolean;
  reason?: string;
}

/** The agents published to the mesh, as executors this node runs where their requirements are met. */
export interface PublishedAgents extends Pick<AgentRegistry, "get" | "list"> {
  /** Take in what the catalogue holds now: fetch new definitions, drop withdrawn ones. One round at a time. */
  refresh(): Promise<void>;
  /** Every published agent with whether it runs here, and the reason where not. */
  states(): Promise<PublishedAgentState[]>;
  /** The published agents that do not run here now, by id, with why (for the node's capability record). */
  unavailable(): Record<string, string>;
}

/** The unmet requirements of a published agent on this node, or undefined when it may run here. */
function unmet(config: CommandAgentConfig, deps: PublishedAgentsDeps): string | undefined {
  const labels = new Set(deps.labelsHere());
  const missingLabels = (config.labels ?? []).filter((l) => !labels.has(l));
  if (missingLabels.length > 0) return `this node lacks the label(s) ${missingLabels.join(", ")} it requires`;
  const skills = new Set(deps.skillsHere());
  const missingSkills = (config.skills ?? []).filter((s) => !skills.has(s));
  if (missingSkills.length > 0) return `this node lacks the skill(s) ${missingSkills.join(", ")} it uses`;
  return undefined;
}

/** An executor that runs only while `why` finds nothing missing: requirements are read again at every probe and task. */
function guarded(inner: AgentExecutor, why: () => string | undefined): AgentExecutor {
  const availability = (): Availability | Promise<Availability> => {
    const reason = why();
    return reason === undefined ? inner.availability() : { available: false, reason };
  };
  return {
    ...inner,
    availability,
    execute: async (ctx) => {
      const now = await availability();
      if (!now.available) throw new AgentUnavailableError(inner.info.id, now.reason ?? "unavailable");
      return inner.execute(ctx);
    },
  };
}

/** A published agent this node cannot take (its definition refused, or not fetched yet): listed with why. */
function placeholder(publication: Publication, reason: string): AgentExecutor {
  const id = publication.name.slice(publication.name.indexOf("/") + 1);
  return {
    info: { id, name: id, description: `${publication.name}@${publication.version}, published by ${publication.publisher}`, capabilities: [] },
    resumable: false,
    retryable: false,
    availability: () => ({ available: false, reason }),
    execute: () => Promise.reject(new AgentUnavailableError(id, reason)),
  };
}

/**
 * The agents published to the mesh (`agent publish`, issue 23), taken in by
 * every member: the newest version of each that is not yanked, its
 * definition fetched from any member that holds it and checked as a file
 * from outside (size, schema, the id its publication names). It runs here
 * only while the node has what it requires (labels, skills, its program on
 * the PATH); otherwise it is listed unavailable with the reason, and the
 * node's capability record leaves it out. A definition refused is audited
 * once per publication. A member that took a definition serves it in turn.
 */
export function createPublishedAgents(deps: PublishedAgentsDeps): PublishedAgents {
  /** By agent id: the publication taken and its executor. */
  const held = new Map<string, { publication: Publication; executor: AgentExecutor; final: boolean }>();
  const audited = new Set<string>();
  let running: Promise<void> | undefined;
  let again = false;

  const refuse = async (publication: Publication, reason: string): Promise<void> => {
    if (audited.has(publication.id)) return;
    audited.add(publication.id);
    await deps.record({ action: "registry.agent", userId: publication.publisher, deviceId: deps.selfId, resource: `${publication.name}@${publication.version}`, result: "denied", reason: `${reason} (statement ${publication.id.slice(0, 16)})` });
  };

  /** The executor for `publication`, and whether trying again could change it (a fetch that failed may succeed later). */
  const take = async (publication: Publication): Promise<{ executor: AgentExecutor; final: boolean }> => {
    const peers = [publication.publisher, ...deps.connectedMembers()].filter((p, i, all) => p !== deps.selfId && all.indexOf(p) === i);
    // Another publication (a skill, published or installed here) may name the same tree: its pin is not ours to take away.
    const servedAlready = deps.served.has(publication.tree);
    const refused = async (err: unknown): Promise<{ executor: AgentExecutor; final: boolean }> => {
      const reason = `its definition is refused: ${(err as Error).message}`;
      await refuse(publication, reason);
      if (!servedAlready) await deps.store.unpin(registryHolder(publication.tree));
      return { executor: placeholder(publication, reason), final: true };
    };
    let tree;
    try {
      // An agent's limits, not a skill's: every member fetches every agent publication unasked, so a tree bigger than
      // one definition is refused from its manifest before any of its blobs is fetched.
      tree = await fetchTreeFromAny({ store: deps.store, client: deps.client, limits: AGENT_TREE_LIMITS }, publication.tree, peers, registryHolder(publication.tree));
    } catch (err) {
      if (err instanceof InvalidInputError) return refused(err);
      return { executor: placeholder(publication, `its definition is not fetched yet: ${(err as Error).message}`), final: false };
    }
    const where = `${publication.name}@${publication.version}/${PUBLISHED_AGENT_FILE}`;
    try {
      const entry = tree.manifest.entries.find((e) => e.path === PUBLISHED_AGENT_FILE);
      if (entry === undefined || entry.kind !== "file" || tree.manifest.entries.length !== 1) throw new Error(`its tree must hold ${PUBLISHED_AGENT_FILE} alone`);
      const bytes = Buffer.concat(entry.chunks.map((d) => deps.store.readSync(d) ?? new Uint8Array()));
      if (bytes.length !== entry.size) throw new Error(`${PUBLISHED_AGENT_FILE} is not held whole`);
      const config = parsePublishedAgent(bytes.toString("utf8"), where, publication.name);
      await deps.served.add(publication.tree, tree.index, tree.blobs);
      const executor = guarded(createCommandAgent(config, deps.commandOptions), () => unmet(config, deps));
      executor.info.description = `${config.description} (${publication.name}@${publication.version}, published by ${publication.publisher})`;
      return { executor, final: true };
    } catch (err) {
      return refused(err);
    }
  };

  const round = async (): Promise<boolean> => {
    const newest = new Map<string, Publication>();
    const names = new Map<string, Set<string>>();
    for (const p of deps.catalogue.list("agent")) {
      if (p.yanked !== undefined) continue;
      const id = p.name.slice(p.name.indexOf("/") + 1);
      names.set(id, (names.get(id) ?? new Set()).add(p.name));
      if (!newest.has(p.name)) newest.set(p.name, p);
    }
    let changed = false;
    const own = new Set(deps.ownAgentIds());
    const taken = new Map<string, Publication>();
    for (const publication of newest.values()) {
      const id = publication.name.slice(publication.name.indexOf("/") + 1);
      if (own.has(id)) {
        await refuse(publication, `this node has an agent ${id} of its own, which a publication does not replace`);
        continue;
      }
      // Agents are run by id: a second team's publication of the same id would take over the first's tasks, so neither runs.
      const teams = [...(names.get(id) ?? [])].sort();
      if (teams.length > 1) {
        await refuse(publication, `agent id ${id} is published under ${teams.join(" and ")}: neither is run`);
        continue;
      }
      taken.set(id, publication);
    }
    for (const [id, publication] of taken) {
      const now = held.get(id);
      if (now !== undefined && now.publication.id === publication.id && now.final) continue;
      held.set(id, { publication, ...(await take(publication)) });
      changed = true;
    }
    for (const [id, { publication }] of held) {
      if (taken.get(id)?.id === publication.id) continue;
      held.delete(id);
      if (publication.publisher !== deps.selfId && ![...held.values()].some((h) => h.publication.tree === publication.tree)) await deps.served.drop(publication.tree);
      changed = true;
    }
    return changed;
  };

  const refresh = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      let changed = false;
      do {
        again = false;
        changed = (await round().catch((err: Error) => (deps.onError?.(err), false))) || changed;
      } while (again);
      running = undefined;
      if (changed) deps.onChange?.();
    })();
    return running;
  };

  return {
    get: (id) => held.get(id)?.executor,
    list: () => [...held.values()].map((h) => h.executor),
    refresh,
    unavailable: () => {
      const out: Record<string, string> = {};
      for (const [id, { executor }] of held) {
        const now = executor.availability();
        if (!(now instanceof Promise) && !now.available) out[id] = (now.reason ?? "unavailable").slice(0, 500);
      }
      return out;
    },
    states: () =>
      Promise.all(
        [...held.entries()].map(async ([id, { publication, executor }]) => {
          const now = await executor.availability();
          return { id, name: publication.name, version: publication.version, publisher: publication.publisher, available: now.available, ...(!now.available && { reason: now.reason ?? "unavailable" }) };
        }),
      ),
  };
}

/** A published agent as `agent list` shows it: here, and on each member by its signed record. */
export interface MeshAgentState extends PublishedAgentState {
  members: Array<{ peer: string; runs: boolean; reason?: string }>;
}

/**
 * Every published agent with whether it runs here and on each member whose record this node holds: a member
 * runs it when its record offers it; otherwise its record says why, or (an older node, or one the publication
 * has not reached yet) nothing.
 */
export async function meshAgentListing(agents: Pick<PublishedAgents, "states">, members: () => Promise<Candidate[]>): Promise<MeshAgentState[]> {
  const records = (await members().catch(() => [] as Candidate[])).filter((m) => !m.local);
  return (await agents.states()).map((state) => ({
    ...state,
    members: records.map(({ peerId, record }) =>
      record.agents.includes(state.id) ? { peer: peerId, runs: true } : { peer: peerId, runs: false, reason: record.unavailable?.[state.id] ?? "its record does not offer it and says no reason" },
    ),
  }));
}

/** `base` with the published agents after its own; an id of its own always wins. */
export function withPublishedAgents(base: AgentRegistry, published: () => Pick<AgentRegistry, "get" | "list"> | undefined): AgentRegistry {
  return {
    get: (id) => base.get(id) ?? published()?.get(id),
    list: () => [...base.list(), ...(published()?.list() ?? []).filter((a) => base.get(a.info.id) === undefined)],
    listSkills: () => base.listSkills(),
  };
}
