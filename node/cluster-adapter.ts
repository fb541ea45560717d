import { describeAgent } from "../src/agents/builtin.js";
import { WORKSPACE_KEY, type WorkspaceSpec } from "../src/workspace/task-spec.js";
import { ATTEMPT_OF } from "./scheduling/attempt-metadata.js";
import { EXECUTOR_GRANT_KEY } from "./workspaces/executor-grant.js";
import type { AgentRegistry } from "../src/agents/executor.js";
import { CoderClawError, InvalidInputError } from "../src/contract/errors.js";
import { parseSubmitOptions } from "../src/contract/submit-options.js";
import type {
  AgentInfo,
  RuntimeStatus,
  SkillInfo,
  StreamOptions,
  SubmitOptions,
  TaskEvent,
  TaskListFilter,
  TaskPage,
  TaskPageFilter,
  TaskState,
  TaskSubmitRequest,
  TaskUpdateEvent,
  TransportAdapter,
} from "../src/contract/types.js";
import { isTerminalEvent } from "../src/engine/state-machine.js";
import { assertTaskId, parseSubmitRequest } from "../src/engine/submit-schema.js";
import { toUpdate, type TaskEngine } from "../src/engine/task-engine.js";
import { VERSION } from "../src/version.js";
import { LEASE_TIMEOUT_MS, presumedLost } from "../protocols/task/lease.js";
import type { Candidate, CapabilityDirectory } from "./routing/index.js";
import type { Dispatcher } from "./scheduling/dispatcher.js";
import type { TaskClient } from "./tasks/task-client.js";

/** Attempts (tasks members run for a task kept elsewhere) are listed as their task, not themselves. */
const notAnAttempt = (t: TaskState): boolean => t.metadata?.[ATTEMPT_OF] === undefined;

/** What the adapter needs of a node. */
export interface ClusterParts {
  selfId: string;
  engine: TaskEngine;
  agents: AgentRegistry;
  directory: CapabilityDirectory;
  client: TaskClient;
  /** Places what is submitted here (see {@link Dispatcher}). */
  dispatcher: Dispatcher;
  /** Executor silence after which a remote task's stream is given up, ms. Default 10 s. */
  leaseTimeoutMs?: number;
  /** Members currently connected, asked about tasks this node has not heard of yet. */
  connectedMembers?: () => string[];
  /** Snapshots of directories that tasks carry (see `SubmitOptions.repo`). */
  workspaces?: { snapshot(dir: string, artifacts?: readonly string[]): Promise<WorkspaceSpec> };
  /** Route used when a submission names none: `auto`, or a peer id to pin work to (a build server). Default `auto`. */
  defaultRoute?: string;
}

export type { SubmitOptions } from "../src/contract/types.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Tasks this node has looked up on other members, remembered so that following them does not ask again. */
const MAX_KNOWN_OWNERS = 10_000;

/**
 * The runtime contract over the mesh (mode `distributed-cluster`). A task
 * submitted here is kept here, under its id, and placed by the node's
 * dispatcher: run here, run as an attempt on a member that can, or kept
 * waiting with its reason until one can. A task kept by another member is read,
 * followed and cancelled through that member.
 */
export class ClusterTransportAdapter implements TransportAdapter {
  /** Task id to the member that keeps it, for tasks not (yet) replicated here. */
  private readonly owners = new Map<string, string>();
  private readonly startedAt = Date.now();

  constructor(private readonly parts: ClusterParts) {}

  /**
   * Place the task: `auto` where the dispatcher finds a slot (this node first
   * when it qualifies), `local` (or this node's id) here, a member's peer id
   * there; any other peer is refused (INVALID_INPUT on `route`). See
   * {@link SubmitOptions} for priority, requirements, deadline and waiting.
   */
  async submitTask(request: TaskSubmitRequest, options: SubmitOptions = {}): Promise<TaskState> {
    return this.#submit(request, options, undefined);
  }

  /**
   * Submit `request` carrying code uploaded over HTTP rather than read from
   * a directory here: once the request and `options` are checked (`options`
   * names no `repo`), `code.adopt` makes the uploaded tree a submission of
   * this node (CodeUploads.submit) and answers its spec.
   */
  async submitUploaded(request: TaskSubmitRequest, options: SubmitOptions, code: { commits?: boolean; adopt: () => Promise<WorkspaceSpec> }): Promise<TaskState> {
    if (options.repo !== undefined || options.artifacts !== undefined || options.commits !== undefined) throw new InvalidInputError("code uploaded names its own artifacts and commits, and no repo", "repo");
    return this.#submit(request, options, code);
  }

  async #submit(request: TaskSubmitRequest, options: SubmitOptions, uploaded: { commits?: boolean; adopt: () => Promise<WorkspaceSpec> } | undefined): Promise<TaskState> {
    const parsed = parseSubmitRequest(request);
    const parsedOptions = parseSubmitOptions(options);
    if (parsedOptions.route === undefined && this.parts.defaultRoute !== undefined) parsedOptions.route = this.parts.defaultRoute;
    const { repo, artifacts, commits, ...placement } = parsedOptions;
    // The code a task carries is this node's to name, from `repo` or an upload: a tree id is no secret (task documents
    // replicate), and a caller naming one would have this node grant its executor a tree it holds for someone else
    // (another user's submission, a result, a tree fetched for a member), or make a workspace of it here.
    for (const key of [WORKSPACE_KEY, EXECUTOR_GRANT_KEY]) {
      if (parsed.metadata?.[key] !== undefined) throw new InvalidInputError(`metadata.${key} is set by the node: submit with repo to send code with a task`, `metadata.${key}`);
    }
    const workspaces = this.parts.workspaces;
    const code =
      repo !== undefined
        ? {
            commits,
            adopt: async () => {
              if (workspaces === undefined) throw new InvalidInputError("this node does not send code with tasks", "repo");
              return workspaces.snapshot(repo, artifacts);
            },
          }
        : uploaded;
    if (code !== undefined) {
      // The tree id goes into the request, which the attempt signs: the executor fetches exactly that tree.
      const spec = await code.adopt();
      parsed.metadata = { ...(parsed.metadata ?? {}), [WORKSPACE_KEY]: code.commits === true ? { ...spec, commits: true } : spec };
    }
    return this.parts.dispatcher.submit({ ...parsed, agentId: parsed.agentId ?? "echo" }, placement);
  }

  async retryTask(taskId: string): Promise<TaskState> {
    assertTaskId(taskId);
    const owner = await this.ownerOf(taskId);
    if (owner !== this.parts.selfId) throw new InvalidInputError(`task ${taskId} was submitted on ${owner}: retry it there`, "taskId");
    const state = await this.parts.engine.getTask(taskId);
    if (!state) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
    return this.parts.dispatcher.retry(taskId, state, await this.parts.engine.getTaskRequest(taskId));
  }

  async getTaskState(taskId: string): Promise<TaskState | null> {
    assertTaskId(taskId);
    const owner = await this.ownerOf(taskId).catch(() => undefined);
    if (owner !== undefined && owner !== this.parts.selfId) {
      try {
        return await this.parts.client.get(owner, taskId);
      } catch {
        // Unreachable owner: the replicated document is the best we know.
      }
    }
    return this.parts.engine.getTask(taskId);
  }

  async getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    assertTaskId(taskId);
    const owner = await this.ownerOf(taskId);
    if (owner !== this.parts.selfId) {
      try {
        return await this.parts.client.events(owner, taskId);
      } catch {
        // fall back to the replica
      }
    }
    return this.parts.engine.getTaskEvents(taskId);
  }

  async *streamTaskUpdates(taskId: string, options: StreamOptions = {}): AsyncIterable<TaskUpdateEvent> {
    assertTaskId(taskId);
    const owner = await this.ownerOf(taskId);
    if (owner === this.parts.selfId) {
      for await (const e of this.parts.engine.streamEvents(taskId, options)) yield toUpdate(taskId, e);
      return;
    }
    yield* this.followRemote(taskId, owner, options.afterSeq ?? 0, options.signal);
  }

  async cancelTask(taskId: string): Promise<boolean> {
    assertTaskId(taskId);
    const owner = await this.ownerOf(taskId);
    if (owner !== this.parts.selfId) return this.parts.client.cancel(owner, taskId);
    return this.parts.dispatcher.cancel(taskId);
  }

  /**
   * Tasks known here (kept here or replicated from members), newest first;
   * attempts (tasks members run for a task kept elsewhere) are left out: their
   * task is listed instead.
   */
  async listTasks(filter: TaskListFilter = {}): Promise<TaskState[]> {
    const tasks = await this.parts.engine.listTasks(filter);
    return tasks.filter(notAnAttempt);
  }

  /** A page of {@link listTasks}: attempts are skipped while the page fills. */
  async listTaskPage(filter: TaskPageFilter): Promise<TaskPage> {
    return this.parts.engine.listTaskPage(filter, notAnAttempt);
  }

  /** Agents of this node, then agents only connected members offer (from their signed records). */
  async listAgents(): Promise<AgentInfo[]> {
    const local = await Promise.all(this.parts.agents.list().map(describeAgent));
    const known = new Set(local.map((a) => a.id));
    const remote = new Map<string, string[]>();
    for (const c of await this.parts.directory.members().catch(() => [] as Candidate[])) {
      for (const id of c.record.agents) if (!known.has(id)) remote.set(id, [...(remote.get(id) ?? []), c.peerId]);
    }
    return [...local, ...[...remote].map(([id, peers]) => ({ id, name: id, description: `offered by ${peers.join(", ")}`, capabilities: [], available: true }))];
  }

  async listSkills(): Promise<SkillInfo[]> {
    return this.parts.agents.listSkills();
  }

  /** Counters of this node: the tasks it keeps, wherever they run. */
  async getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    const c = this.parts.engine.counters();
    return { version: VERSION, uptime: Date.now() - this.startedAt, activeTasks: c.activeTasks, totalTasks: c.totalTasks, healthy: c.healthy };
  }

  async close(): Promise<void> {
    // The node owns the engine, client, directory and dispatcher; it closes them.
  }

  /** The member that keeps a task: this node, the writer of its replica, or whichever connected member knows it. */
  private async ownerOf(taskId: string): Promise<string> {
    const known = this.owners.get(taskId);
    if (known !== undefined) return known;
    const state = await this.parts.engine.getTask(taskId);
    if (state) return state.executorId ?? this.parts.selfId;
    // Not replicated here yet: ask the members we are connected to; the owner knows its own tasks.
    const owner = await this.askMembers(taskId);
    if (!owner) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
    this.owners.set(taskId, owner);
    if (this.owners.size > MAX_KNOWN_OWNERS) this.owners.delete(this.owners.keys().next().value!);
    return owner;
  }

  private async askMembers(taskId: string): Promise<string | undefined> {
    const peers = this.parts.connectedMembers?.() ?? [];
    const answers = await Promise.all(peers.map(async (peer) => (await this.parts.client.get(peer, taskId).catch(() => null))?.executorId));
    return answers.find((a) => a !== undefined);
  }

  /**
   * Follow a task kept by another member, resuming after the last update seen
   * while the connection comes and goes; given up (UNAVAILABLE) once the member
   * has been silent past the lease, since only it can say how the task ends.
   */
  private async *followRemote(taskId: string, owner: string, afterSeq: number, signal: AbortSignal | undefined): AsyncGenerator<TaskUpdateEvent> {
    const leaseTimeout = this.parts.leaseTimeoutMs ?? LEASE_TIMEOUT_MS;
    let last = afterSeq;
    let heard = Date.now();
    for (;;) {
      try {
        for await (const e of this.parts.client.subscribe(owner, taskId, last, signal)) {
          heard = Date.now();
          last = e.seq;
          yield toUpdate(taskId, e);
          if (isTerminalEvent(e)) return;
        }
        return;
      } catch (err) {
        if (signal?.aborted) return;
        if (!(err instanceof CoderClawError && (err.code === "UNAVAILABLE" || err.code === "TIMEOUT"))) throw err;
      }
      if (presumedLost(this.parts.client.leaseOf(taskId), heard, leaseTimeout)) {
        throw new CoderClawError("UNAVAILABLE", `${owner}, which keeps task ${taskId}, has not answered for ${leaseTimeout} ms`);
      }
      await sleep(Math.min(500, leaseTimeout / 4));
    }
  }
}
