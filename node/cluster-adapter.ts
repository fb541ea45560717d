import { describeAgent } from "../src/agents/builtin.js";
import type { AgentRegistry } from "../src/agents/executor.js";
import { AgentUnavailableError, CoderClawError, InvalidInputError } from "../src/contract/errors.js";
import { parseRoute } from "../src/contract/route.js";
import type {
  AgentInfo,
  RuntimeStatus,
  SkillInfo,
  StreamOptions,
  SubmitOptions,
  TaskEvent,
  TaskListFilter,
  TaskState,
  TaskSubmitRequest,
  TaskUpdateEvent,
  TransportAdapter,
} from "../src/contract/types.js";
import { ROUTE_AUTO, ROUTE_LOCAL } from "../src/contract/types.js";
import { isTerminalEvent } from "../src/engine/state-machine.js";
import { assertTaskId, parseSubmitRequest } from "../src/engine/submit-schema.js";
import { toUpdate, type TaskEngine } from "../src/engine/task-engine.js";
import { VERSION } from "../src/version.js";
import { LEASE_TIMEOUT_MS, presumedLost } from "../protocols/task/lease.js";
import type { Candidate, CapabilityDirectory } from "./routing/index.js";
import type { TaskClient } from "./tasks/task-client.js";

/** What the adapter needs of a node. */
export interface ClusterParts {
  selfId: string;
  engine: TaskEngine;
  agents: AgentRegistry;
  directory: CapabilityDirectory;
  client: TaskClient;
  isMember: (peerId: string) => boolean;
  /** Executor silence after which a remote task is presumed lost, ms. Default 10 s. */
  leaseTimeoutMs?: number;
  /** Capability lookup deadline, ms. Default 5 s (retried once, twice as long, when nothing answers). */
  lookupTimeoutMs?: number;
  /** Members currently connected, asked about tasks this node has not heard of yet. */
  connectedMembers?: () => string[];
  /** Route used when a submission names none: `auto`, or a peer id to pin work to (a build server). Default `auto`. */
  defaultRoute?: string;
}

export type { SubmitOptions } from "../src/contract/types.js";

/** Errors after which the next candidate is tried: the node could not or would not take the task. */
const RETRY_NEXT = new Set(["AGENT_UNAVAILABLE", "UNKNOWN_AGENT", "UNAVAILABLE", "TIMEOUT", "SHUTTING_DOWN", "PERMISSION_DENIED"]);

interface Route {
  peer: string;
  request: TaskSubmitRequest;
  retryable: boolean;
  /** Set when the task was re-routed: the task now carrying the work. */
  successor?: string;
  /** Set when the executor was lost and the task cannot be retried. */
  lost?: TaskState;
}

/** Routes kept in memory (re-routing, lease failures, lists before replication). */
const MAX_ROUTES = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The runtime contract over the mesh (mode `distributed-cluster`): each task is
 * routed to a member that offers its agent (this node first when it can run it),
 * followed over the task protocol with resumable streams, and watched through its
 * executor's lease: when the lease lapses, a retryable task is re-routed and any
 * other fails with a clear error, so nothing is left silently stuck.
 */
export class ClusterTransportAdapter implements TransportAdapter {
  private readonly routes = new Map<string, Route>();
  private readonly startedAt = Date.now();

  constructor(private readonly parts: ClusterParts) {}

  /**
   * Route the task: `auto` to the best member offering its agent, `local` (or this
   * node's id) here, a member's peer id there; any other peer is refused
   * (INVALID_INPUT on `route`). Without a route, the node's `defaultRoute`.
   */
  async submitTask(request: TaskSubmitRequest, options: SubmitOptions = {}): Promise<TaskState> {
    const parsed = parseSubmitRequest(request);
    const agentId = parsed.agentId ?? "echo";
    const route = options.route === undefined ? (this.parts.defaultRoute ?? ROUTE_AUTO) : parseRoute(options.route);
    const candidates = this.candidates(agentId, route === ROUTE_LOCAL ? this.parts.selfId : route, new Set());
    return this.submitToFirst({ ...parsed, agentId }, candidates);
  }

  async getTaskState(taskId: string): Promise<TaskState | null> {
    assertTaskId(taskId);
    const route = this.routes.get(taskId);
    if (route?.lost) return { ...route.lost };
    if (route?.successor) {
      const next = await this.getTaskState(route.successor);
      return next ? { ...next, id: taskId } : null;
    }
    const peer = route?.peer ?? (await this.parts.engine.getTask(taskId))?.executorId;
    if (peer && peer !== this.parts.selfId) {
      try {
        return await this.parts.client.get(peer, taskId);
      } catch {
        // Unreachable executor: the replicated document is the best we know.
      }
    }
    return this.parts.engine.getTask(taskId);
  }

  async getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    assertTaskId(taskId);
    const peer = await this.executorOf(taskId);
    if (peer && peer !== this.parts.selfId) {
      try {
        return await this.parts.client.events(peer, taskId);
      } catch {
        // fall back to the replica
      }
    }
    return this.parts.engine.getTaskEvents(taskId);
  }

  async *streamTaskUpdates(taskId: string, options: StreamOptions = {}): AsyncIterable<TaskUpdateEvent> {
    assertTaskId(taskId);
    let last = options.afterSeq ?? 0;
    let current = taskId;
    // Sequence numbers of a re-routed task continue after the last one seen of its predecessor.
    let offset = 0;
    for (;;) {
      const peer = await this.executorOf(current);
      if (!peer || peer === this.parts.selfId) {
        for await (const e of this.parts.engine.streamEvents(current, { ...options, afterSeq: last - offset })) {
          last = e.seq + offset;
          yield { ...toUpdate(taskId, e), seq: last };
        }
        return;
      }
      const outcome = yield* this.followRemote(taskId, current, peer, () => last, (seq) => (last = seq), offset, options.signal);
      if (outcome.kind === "done") return;
      const route = this.routes.get(current);
      if (!route?.retryable) {
        const lost = await this.markLost(current, peer);
        yield { taskId, status: "failed", timestamp: new Date(), message: lost.error!, seq: ++last };
        return;
      }
      const successor = await this.reroute(current, route, peer);
      yield { taskId, status: "running", timestamp: new Date(), message: `executor ${peer} lost (lease expired); re-routed to ${successor.executorId ?? "?"} as task ${successor.id}`, data: { reroutedTo: successor.id }, seq: ++last };
      offset = last;
      current = successor.id;
    }
  }

  async cancelTask(taskId: string): Promise<boolean> {
    assertTaskId(taskId);
    const route = this.routes.get(taskId);
    if (route?.lost) return false;
    if (route?.successor) return this.cancelTask(route.successor);
    const peer = await this.executorOf(taskId);
    if (peer && peer !== this.parts.selfId) return this.parts.client.cancel(peer, taskId);
    return this.parts.engine.cancel(taskId);
  }

  /**
   * Tasks known here (executed here or replicated from members), plus tasks this
   * node routed elsewhere whose documents have not replicated yet, read from their
   * executors so a caller always sees its own submissions.
   */
  async listTasks(filter: TaskListFilter = {}): Promise<TaskState[]> {
    const local = await this.parts.engine.listTasks(filter);
    const seen = new Set(local.map((t) => t.id));
    const missing = [...this.routes.entries()].filter(([id, r]) => !seen.has(id) && r.peer !== this.parts.selfId && !r.successor).slice(-200);
    const fetched = await Promise.all(missing.map(([id]) => this.getTaskState(id).catch(() => null)));
    const extra = fetched.filter((t): t is TaskState => t !== null && (filter.status === undefined || t.status === filter.status) && (filter.sessionId === undefined || t.sessionId === filter.sessionId));
    if (extra.length === 0) return local;
    return [...local, ...extra].sort((x, y) => y.createdAt.getTime() - x.createdAt.getTime()).slice(0, filter.limit ?? 100);
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

  /** Counters of this node: tasks it executes, plus tasks it submitted to other members. */
  async getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    const c = this.parts.engine.counters();
    let routedAway = 0;
    for (const r of this.routes.values()) if (r.peer !== this.parts.selfId) routedAway++;
    return { version: VERSION, uptime: Date.now() - this.startedAt, activeTasks: c.activeTasks, totalTasks: c.totalTasks + routedAway, healthy: c.healthy };
  }

  async close(): Promise<void> {
    // The node owns the engine, client and directory; it closes them.
  }

  /**
   * Keep a task's route, forgetting the oldest beyond {@link MAX_ROUTES}: old tasks
   * are answered from their replicated documents, so memory stays bounded on a
   * long-running node.
   */
  private remember(taskId: string, route: Route): void {
    this.routes.set(taskId, route);
    if (this.routes.size > MAX_ROUTES) this.routes.delete(this.routes.keys().next().value!);
  }

  private async executorOf(taskId: string): Promise<string | undefined> {
    const route = this.routes.get(taskId);
    if (route) return route.peer;
    const state = await this.parts.engine.getTask(taskId);
    if (state) return state.executorId;
    // Not replicated here yet: ask the members we are connected to; the executor knows its own tasks.
    const executor = await this.askMembers(taskId);
    if (!executor) throw new CoderClawError("NOT_FOUND", `task not found: ${taskId}`);
    this.remember(taskId, { peer: executor.peer, request: { description: executor.state.description, input: "" }, retryable: executor.state.metadata?.retryable === true });
    return executor.peer;
  }

  private async askMembers(taskId: string): Promise<{ peer: string; state: TaskState } | undefined> {
    const peers = this.parts.connectedMembers?.() ?? [];
    const answers = await Promise.all(
      peers.map(async (peer) => {
        const state = await this.parts.client.get(peer, taskId).catch(() => null);
        return state?.executorId === undefined ? undefined : { peer: state.executorId, state };
      }),
    );
    return answers.find((a) => a !== undefined);
  }

  /**
   * The nodes to try, best first. This node comes first when it can run the agent,
   * and the mesh is looked up only if it refuses: a lookup that finds no other
   * offer waits out its whole deadline, which a lone node would pay on every task.
   */
  private async *candidates(agentId: string, route: string, exclude: ReadonlySet<string>): AsyncGenerator<string> {
    const self = this.parts.selfId;
    if (route !== ROUTE_AUTO) {
      if (route !== self && !this.parts.isMember(route)) throw new InvalidInputError(`${route} is not a member of this mesh`, "route");
      yield route;
      return;
    }
    const localAgent = this.parts.agents.get(agentId);
    const here = !exclude.has(self) && localAgent !== undefined && (await localAgent.availability()).available;
    if (here) yield self;
    const lookup = (timeoutMs: number): Promise<Candidate[]> => this.parts.directory.findAgent(agentId, { timeoutMs, excludeLocal: true }).catch(() => [] as Candidate[]);
    const timeoutMs = this.parts.lookupTimeoutMs ?? 5000;
    let found = await lookup(timeoutMs);
    // A busy machine or a peer that just vanished can eat a whole lookup; one more, longer try before refusing.
    if (found.length === 0 && !here) found = await lookup(timeoutMs * 2);
    const score = (c: Candidate): number => c.record.load / Math.max(1, c.record.maxConcurrency) + (c.latencyMs ?? 50) / 1000;
    const seen = new Set(here ? [self] : []);
    for (const c of found.filter((c) => !exclude.has(c.peerId) && this.parts.isMember(c.peerId)).sort((a, b) => score(a) - score(b))) {
      if (seen.has(c.peerId)) continue;
      seen.add(c.peerId);
      yield c.peerId;
    }
  }

  private async submitToFirst(request: TaskSubmitRequest, candidates: AsyncIterable<string>): Promise<TaskState> {
    const agentId = request.agentId!;
    let tried = false;
    let lastError: unknown;
    for await (const peer of candidates) {
      tried = true;
      try {
        // Followed: a caller streams the task's updates next, and a quick task's arrive with the answer.
        const task = peer === this.parts.selfId ? await this.parts.engine.submit(request) : await this.parts.client.submit(peer, request, undefined, { follow: true });
        const retryable = peer === this.parts.selfId ? (this.parts.agents.get(agentId)?.retryable ?? false) : task.metadata?.retryable === true;
        this.remember(task.id, { peer, request, retryable });
        return task;
      } catch (err) {
        lastError = err;
        if (!(err instanceof CoderClawError && RETRY_NEXT.has(err.code))) throw err;
      }
    }
    if (!tried) throw new AgentUnavailableError(agentId, "no node in the mesh offers it now", "UNKNOWN_AGENT");
    throw lastError instanceof CoderClawError ? lastError : new AgentUnavailableError(agentId, `every candidate refused: ${String(lastError)}`);
  }

  /** Follow a remote task until it ends ("done") or its executor's lease lapses ("lost"). */
  private async *followRemote(
    taskId: string,
    current: string,
    peer: string,
    getLast: () => number,
    setLast: (seq: number) => void,
    offset: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<TaskUpdateEvent, { kind: "done" | "lost" }> {
    const leaseTimeout = this.parts.leaseTimeoutMs ?? LEASE_TIMEOUT_MS;
    let silentSince = Date.now();
    for (;;) {
      try {
        for await (const e of this.parts.client.subscribe(peer, current, Math.max(0, getLast() - offset), signal)) {
          silentSince = Date.now();
          setLast(e.seq + offset);
          yield { ...toUpdate(taskId, e), seq: e.seq + offset };
          if (isTerminalEvent(e)) return { kind: "done" };
        }
        return { kind: "done" };
      } catch (err) {
        if (signal?.aborted) return { kind: "done" };
        if (!(err instanceof CoderClawError && (err.code === "UNAVAILABLE" || err.code === "TIMEOUT"))) throw err;
      }
      if (presumedLost(this.parts.client.leaseOf(current), silentSince, leaseTimeout)) return { kind: "lost" };
      await sleep(Math.min(500, leaseTimeout / 4));
    }
  }

  private async markLost(taskId: string, peer: string): Promise<TaskState> {
    const known = (await this.parts.engine.getTask(taskId).catch(() => null)) ?? null;
    const route = this.routes.get(taskId);
    const base: TaskState = known ?? { id: taskId, status: "running", description: route?.request.description ?? "", createdAt: new Date() };
    const lost: TaskState = { ...base, status: "failed", error: `executor ${peer} unreachable: lease expired and agent ${route?.request.agentId ?? "?"} is not retryable`, completedAt: new Date() };
    if (route) route.lost = lost;
    else this.remember(taskId, { peer, request: { description: base.description, input: "" }, retryable: false, lost });
    return lost;
  }

  private async reroute(taskId: string, route: Route, deadPeer: string): Promise<TaskState> {
    const agentId = route.request.agentId ?? "echo";
    const candidates = this.candidates(agentId, "auto", new Set([deadPeer]));
    const successor = await this.submitToFirst({ ...route.request, parentTaskId: taskId, metadata: { ...(route.request.metadata ?? {}), reroutedFrom: taskId } }, candidates);
    route.successor = successor.id;
    return successor;
  }
}
