import type { AgentRegistry } from "../../src/agents/executor.js";
import { ATTEMPT, ATTEMPT_OF, IDEMPOTENCY_KEY, attemptKey } from "./attempt-metadata.js";
import { AgentUnavailableError, CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import type { SubmitOptions, TaskEvent, TaskPlacement, TaskRequirements, TaskState, TaskSubmitRequest } from "../../src/contract/types.js";
import { ROUTE_AUTO, ROUTE_LOCAL } from "../../src/contract/types.js";
import { isTerminal, isTerminalEvent } from "../../src/engine/state-machine.js";
import type { HeldOutcome, TaskEngine } from "../../src/engine/task-engine.js";
import { newTaskId } from "../../src/engine/task-id.js";
import { presumedLost, type Lease } from "../../protocols/task/lease.js";
import type { Candidate } from "../routing/index.js";
import { placeWaiting, type PlacementCandidate, type WaitingTask } from "./placement.js";

/** What the dispatcher needs to run attempts on other members (the task client). */
export interface AttemptClient {
  submit(peer: string, request: TaskSubmitRequest, session: string | undefined, options: { follow?: boolean; key?: string; fenceAfterMs?: number; timeoutMs?: number }): Promise<TaskState>;
  subscribe(peer: string, taskId: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<TaskEvent>;
  get(peer: string, taskId: string): Promise<TaskState | null>;
  cancel(peer: string, taskId: string): Promise<boolean>;
  leaseOf(taskId: string): Lease | undefined;
  /** The final state that came with a followed task's last events, if it did. */
  finalState?(taskId: string): TaskState | undefined;
}

/** Dependencies of a {@link Dispatcher}. */
export interface DispatcherOptions {
  selfId: string;
  engine: TaskEngine;
  agents: AgentRegistry;
  client: AttemptClient;
  /** Signed records of the connected members (their agents, slots, load, labels, resources). */
  members: () => Promise<Candidate[]>;
  isMember: (peerId: string) => boolean;
  /** True while a connection to `peerId` is open. */
  isConnected?: (peerId: string) => boolean;
  /** Open a connection to a member, from the addresses this node knows; rejects when it cannot. */
  reach?: (peerId: string) => Promise<void>;
  /** This node's own labels and resources, as configured. */
  local?: () => { labels?: readonly string[]; resources?: Readonly<Record<string, number>> };
  /** Executor silence after which an attempt is presumed lost, ms. */
  leaseTimeoutMs: number;
  /** Told before each attempt is sent to `peer` (a task that carries code lets that member read it); answers the request to send, when it adds to it. */
  beforeAttempt?: (peer: string, request: TaskSubmitRequest) => TaskSubmitRequest | void | Promise<TaskSubmitRequest | void>;
  /** Records of members are asked again once older than this while tasks wait, ms. Default 1 s. */
  recordsMaxAgeMs?: number;
  /** Told of each output text an attempt on `peer` streamed here, as it is mirrored into this node's own task document. */
  onMirrored?: (peer: string, text: string) => void;
  onError?: (where: string, error: Error) => void;
}

/** A task waiting on this node for a member to run it. */
interface Waiting {
  id: string;
  agentId: string;
  priority: number;
  order: number;
  requires?: TaskRequirements;
  deadline?: number;
  /** Pinned to one member by its route. */
  only?: string;
  /** Members not to try again before the time given (one that lost or refused the task). */
  avoid: Map<string, number>;
  /** Attempts made so far. */
  attempts: number;
  /** Reason last recorded, so an unchanged one is not written again. */
  reason?: string;
  /** False for a submission that must start now or be refused: a pinned member is tried only when its signed record vouches for it. */
  mayWait?: boolean;
}

/** An attempt under way on another member. */
interface Attempt {
  peer: string;
  controller: AbortController;
  attemptId?: string;
}

/**
 * A submission that may or may not have reached the member: the connection
 * failed or no answer came (the client gives these a cause). Only the same key
 * to the same member settles it. The member's own answers are definite, even
 * one that says UNAVAILABLE.
 */
const inDoubt = (err: CoderClawError): boolean => (err.code === "UNAVAILABLE" || err.code === "TIMEOUT") && err.cause !== undefined;

/** Refusals after which the task waits for another chance (another member, or a slot); any other refusal ends it. */
const WAIT_AFTER = new Set(["BUSY", "SHUTTING_DOWN", "UNKNOWN_AGENT", "AGENT_UNAVAILABLE"]);

/** How long after an unexpected failure an attempt is taken up again, ms. */
const RETAKE_AFTER_MS = 1000;

/** Shortest wait for a member's answer to an attempt before asking again, ms. */
const ANSWER_WITHIN_MS = 5000;

/** A member that pinned work waits for is dialled at most this often, ms. */
const REACH_EVERY_MS = 5000;

/** Member records younger than this are trusted to tell a new submission it must wait, ms. */
const FRESH_MS = 100;

/** Member records up to this old still serve a placement while fresh ones are read, ms. */
const STALE_RECORDS_SERVE_MS = 5000;

/** A failed attempt that a retryable task runs again elsewhere: the member lost it, it did not fail by itself. */
const LOST_ATTEMPT = /^(interrupted|superseded)/;

/** Wait `ms`, or until `signal` aborts; the listener goes with the wait, so a long-lived signal does not collect them. */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Places the tasks submitted on this node: on this node while it has a free
 * slot and qualifies, else on a connected member that offers the agent, has
 * the labels and resources asked for and a free slot; otherwise the task waits
 * `pending`, durably, with its reason, and goes out as soon as a capable
 * member has a slot (in priority then submission order). A task placed on a
 * member runs there as an attempt, keyed so that a repeated submission finds
 * the same attempt; this node follows it, mirrors its history into the task
 * and ends the task with its outcome. An attempt whose member goes silent past
 * the lease is re-placed when its agent is retryable (the member fences it) and
 * waited for otherwise. Everything this node decides is durable before it acts
 * on it, so a restart takes every task up where it was.
 */
export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #waiting = new Map<string, Waiting>();
  readonly #attempts = new Map<string, Attempt>();
  /** Attempts of ours under way per member. */
  readonly #ours = new Map<string, number>();
  /** Slots of a member taken by others' work, estimated from its record and its refusals. */
  readonly #theirs = new Map<string, number>();
  /** Tasks this dispatcher is ending itself, whose end it must not mistake for a cancel. */
  readonly #concluding = new Set<string>();
  #records: { at: number; list: Candidate[] } | undefined;
  #refreshing: Promise<Candidate[]> | undefined;
  #order = 0;
  /** Local slots promised to submissions whose task the engine has not queued yet. */
  #reservedHere = 0;
  /** When each member pinned work waits for was last dialled. */
  readonly #dialled = new Map<string, number>();
  /** The last placement decision queued; the next one waits for it. */
  #turn: Promise<void> = Promise.resolve();
  #passing = false;
  #again = false;
  #scheduled = false;
  #stopped = false;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#unsubscribe = options.engine.onEvent((taskId, event) => this.#onEvent(taskId, event));
    // Members come, gain agents and free slots without telling us; while tasks wait, look again now and then.
    this.#timer = setInterval(() => {
      if (this.#waiting.size > 0) this.#schedule();
    }, Math.min(1000, this.#o.recordsMaxAgeMs ?? 1000));
    this.#timer.unref();
  }

  /** Take up the tasks a previous run left waiting or placed: each attempt is asked for again under its key. */
  start(): void {
    for (const task of this.#o.engine.heldTasks()) {
      const p = task.placement ?? {};
      if (p.runsOn !== undefined && p.attempt !== undefined) {
        this.#reserve(p.runsOn);
        void this.#run(task.id, p.runsOn, p.attempt, task.status !== "pending");
      } else {
        this.#enqueue(task, p.attempt ?? 0);
      }
    }
    this.#schedule();
  }

  /**
   * Take a submission: run it here at once when this node qualifies and has a
   * slot and nothing waits ahead of it, else keep it as a held task and place
   * it. Refuses at once (AGENT_UNAVAILABLE) with `waitForPeer: false` when no
   * member can start it now.
   */
  async submit(request: TaskSubmitRequest, options: SubmitOptions): Promise<TaskState> {
    const { engine, selfId } = this.#o;
    const agentId = request.agentId ?? "echo";
    const route = options.route ?? ROUTE_AUTO;
    if (route === ROUTE_LOCAL || route === selfId) return engine.submit({ ...request, agentId });
    if (route !== ROUTE_AUTO && !this.#o.isMember(route)) throw new InvalidInputError(`${route} is not a member of this mesh`, "route");
    const only = route === ROUTE_AUTO ? undefined : route;
    const placement: TaskPlacement = { priority: options.priority ?? 0 };
    if (options.requires !== undefined) placement.requires = options.requires;
    if (options.deadline !== undefined) placement.deadline = options.deadline;
    if (only === undefined && this.#waiting.size === 0 && options.requires === undefined && this.#freeHere() > 0) {
      // The slot is taken before anything is awaited: a burst of submissions must not all see the same free slot.
      this.#reservedHere++;
      try {
        if (await this.#availableHere(agentId)) return await engine.submit({ ...request, agentId });
      } finally {
        this.#reservedHere--;
      }
    }
    if (only !== undefined) {
      placement.route = only;
      // A member we paired with but are not connected to is dialled first: pinned work goes there now if it can.
      if (this.#o.isConnected?.(only) === false) {
        await this.#reach(only);
        this.#records = undefined;
      }
    }
    const probe: Waiting = { id: "", agentId, priority: placement.priority!, order: Number.MAX_SAFE_INTEGER, avoid: new Map(), attempts: 0 };
    if (only !== undefined) probe.only = only;
    if (options.requires !== undefined) probe.requires = options.requires;
    if (options.waitForPeer === false) probe.mayWait = false;
    // Decisions are taken one at a time, each reserving the slot it picks: a burst of submissions must not all see the same slot free.
    const { decision, target } = await this.#exclusive(async () => {
      let d = await this.#decide([...this.#waiting.values(), probe]);
      if (!d.placed.some((p) => p.taskId === "") && this.#records !== undefined && Date.now() - this.#records.at > FRESH_MS) {
        // Before telling a caller its task must wait, make sure of it with what the members say now.
        this.#records = undefined;
        d = await this.#decide([...this.#waiting.values(), probe]);
      }
      const t = d.placed.find((p) => p.taskId === "")?.peerId;
      if (t !== undefined) this.#reserve(t);
      return { decision: d, target: t };
    });
    if (target === undefined && options.waitForPeer === false) {
      throw new AgentUnavailableError(agentId, `no member can start it now (${decision.waiting.get("") ?? "no member offers it"})`, "UNKNOWN_AGENT");
    }
    const req = { ...request, agentId };
    if (target === selfId) {
      try {
        return await engine.submit(req);
      } finally {
        this.#release(selfId);
      }
    }
    if (target !== undefined) {
      const sent = this.#waiting.size === 0 ? await this.#sendFirst(req, placement, target) : undefined;
      if (sent !== undefined) return sent;
      this.#release(target);
    }
    const reason = decision.waiting.get("") ?? "queued behind other tasks";
    const held = await engine.hold(req, { ...placement, reason }, reason);
    this.#enqueue(held, 0, reason);
    this.#schedule();
    return held;
  }

  /**
   * The first attempt of a new task, sent before the task is stored here: a
   * member that refuses it leaves no trace here and the caller hears why at
   * once. Once the member took it (or may have), the task is stored with its
   * attempt and followed. Undefined when the member had no free slot: the task
   * waits like any other. The member's slot is reserved by the caller.
   */
  async #sendFirst(request: TaskSubmitRequest, placement: TaskPlacement, peer: string): Promise<TaskState | undefined> {
    const { engine, selfId } = this.#o;
    const id = newTaskId(Date.now(), selfId);
    const sent = await this.#submitAttempt(peer, this.#attemptRequest(id, 1, request), attemptKey(id, 1, request), undefined, 1);
    if ("refused" in sent && sent.refused.code === "BUSY") {
      this.#theirsFull(peer, sent.refused);
      return undefined;
    }
    if ("refused" in sent && !inDoubt(sent.refused)) {
      this.#release(peer);
      throw sent.refused;
    }
    const accepted = "task" in sent ? sent.task : undefined;
    const where: TaskPlacement = { ...placement, runsOn: peer, attempt: 1, ...(accepted !== undefined && { attemptId: accepted.id }) };
    let held: TaskState;
    try {
      held = await engine.hold(request, where, accepted === undefined ? `sent to ${peer} (attempt 1), no answer yet` : `placed on ${peer} as task ${accepted.id}`, id);
    } catch (err) {
      this.#release(peer);
      throw err;
    }
    // The attempt takes over the slot reserved for it.
    void this.#run(id, peer, 1, false, undefined, accepted);
    return held;
  }

  /** An attempt's request: the task's, naming the task and the attempt. */
  #attemptRequest(taskId: string, n: number, request: TaskSubmitRequest): TaskSubmitRequest {
    return { ...request, metadata: { ...(request.metadata ?? {}), [ATTEMPT_OF]: taskId, [ATTEMPT]: n } };
  }

  /** Submit an ended task (failed or cancelled) again with the same request and placement options. */
  async retry(taskId: string, task: TaskState, request: TaskSubmitRequest): Promise<TaskState> {
    if (task.status !== "failed" && task.status !== "cancelled") {
      throw new CoderClawError("INVALID_TRANSITION", `task ${taskId} is ${task.status}: only a failed or cancelled task can be retried`);
    }
    const metadata = { ...(request.metadata ?? {}) };
    // A retry is new work by choice: under the old idempotency key it would reach the attempt that failed.
    for (const k of [ATTEMPT_OF, ATTEMPT, IDEMPOTENCY_KEY, "requester", "retryable"]) delete metadata[k];
    const options: SubmitOptions = {};
    const p = task.placement;
    if (p?.priority !== undefined) options.priority = p.priority;
    if (p?.requires !== undefined) options.requires = p.requires;
    return this.submit({ ...request, parentTaskId: taskId, metadata: { ...metadata, retryOf: taskId } }, options);
  }

  /**
   * Cancel a task kept here. One with an attempt under way is cancelled where
   * it runs first, as that member decides (it may refuse: PERMISSION_DENIED),
   * and ends here as the attempt ends; any other is cancelled here. False when
   * it had already ended.
   */
  async cancel(taskId: string): Promise<boolean> {
    const attempt = this.#attempts.get(taskId);
    if (attempt?.attemptId === undefined || attempt.controller.signal.aborted) return this.#o.engine.cancel(taskId);
    try {
      return await this.#o.client.cancel(attempt.peer, attempt.attemptId);
    } catch (err) {
      // Out of reach: the task ends here now, and its attempt is cancelled when the member can be told.
      if (err instanceof CoderClawError && inDoubt(err)) return this.#o.engine.cancel(taskId);
      throw err;
    }
  }

  /** Members or their records changed: look again. */
  membersChanged(): void {
    this.#records = undefined;
    this.#schedule();
  }

  /** Stop placing; attempts under way stay as they are, durable, for the next start. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#unsubscribe();
    for (const a of this.#attempts.values()) a.controller.abort();
  }

  #enqueue(task: TaskState, attempts: number, reason?: string): void {
    const p = task.placement ?? {};
    const w: Waiting = { id: task.id, agentId: task.agentId ?? "echo", priority: p.priority ?? 0, order: this.#order++, avoid: new Map(), attempts };
    if (p.route !== undefined) w.only = p.route;
    if (p.requires !== undefined) w.requires = p.requires;
    if (p.deadline !== undefined) w.deadline = p.deadline.getTime();
    if (reason !== undefined) w.reason = reason;
    this.#waiting.set(task.id, w);
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#passing) {
      this.#again = true;
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#pass();
    });
  }

  /** One placement pass over the waiting tasks. */
  async #pass(): Promise<void> {
    if (this.#passing || this.#stopped) return;
    this.#passing = true;
    try {
      do {
        this.#again = false;
        await this.#expire();
        if (this.#waiting.size === 0) break;
        const decision = await this.#exclusive(async () => {
          const d = await this.#decide([...this.#waiting.values()]);
          for (const { peerId } of d.placed) this.#reserve(peerId);
          return d;
        });
        // Placed together, so that their placement records share one write.
        await Promise.all(decision.placed.map(({ taskId, peerId }) => this.#place(taskId, peerId)));
        for (const [taskId, reason] of decision.waiting) this.#explain(taskId, reason);
      } while (this.#again && !this.#stopped);
    } catch (err) {
      this.#o.onError?.("dispatch", err as Error);
    } finally {
      this.#passing = false;
    }
  }

  /** Fail the waiting tasks whose deadline has passed. */
  async #expire(): Promise<void> {
    const now = Date.now();
    for (const w of [...this.#waiting.values()]) {
      if (w.deadline === undefined || w.deadline > now) continue;
      this.#waiting.delete(w.id);
      const why = w.reason ?? "no member could run it";
      await this.#conclude(w.id, { status: "failed", error: `deadline ${new Date(w.deadline).toISOString()} passed before a member could run it (${why})` });
    }
  }

  /** Record why a task waits, once per change of reason. */
  #explain(taskId: string, reason: string): void {
    const w = this.#waiting.get(taskId);
    if (w === undefined || w.reason === reason) return;
    w.reason = reason;
    this.#o.engine.placeHeld(taskId, { reason }).catch((err: unknown) => this.#o.onError?.("dispatch", err as Error));
  }

  /** Send a waiting task where the pass placed it, on the slot the pass reserved there. */
  async #place(taskId: string, peer: string): Promise<void> {
    const w = this.#waiting.get(taskId);
    if (w === undefined) {
      this.#release(peer);
      return;
    }
    this.#waiting.delete(taskId);
    const { engine } = this.#o;
    try {
      if (peer === this.#o.selfId) {
        try {
          if (!(await engine.runHere(taskId))) this.#waiting.set(taskId, w);
        } finally {
          this.#release(peer);
        }
        return;
      }
      const attempt = w.attempts + 1;
      try {
        // Durable before the member hears of it: a restart asks it again under the same key rather than elsewhere.
        await engine.placeHeld(taskId, { reason: undefined, runsOn: peer, attempt, attemptId: undefined, attemptSeq: undefined }, `placing on ${peer} (attempt ${attempt})`);
      } catch (err) {
        this.#release(peer);
        throw err;
      }
      void this.#run(taskId, peer, attempt, w.attempts > 0, w);
    } catch (err) {
      // The task ended meanwhile (cancelled), or storage failed: either way it is not waiting any more.
      if (!(err instanceof CoderClawError && err.code === "INVALID_TRANSITION")) this.#o.onError?.("dispatch", err as Error);
    }
  }

  /**
   * Run attempt `n` of a held task on `peer` to its end: submit it (again,
   * under the same key, while the member cannot be reached), follow it, mirror
   * it, and end the task, re-place it, or wait for the member, as its outcome
   * says. It owns the slot reserved for it there, and gives it back at its end.
   */
  async #run(taskId: string, peer: string, n: number, started: boolean, waiting?: Waiting, alreadyAccepted?: TaskState): Promise<void> {
    const { engine } = this.#o;
    const controller = new AbortController();
    const attempt: Attempt = { peer, controller };
    this.#attempts.set(taskId, attempt);
    let slotHeld = true;
    const freeSlot = (): void => {
      if (!slotHeld) return;
      slotHeld = false;
      this.#release(peer);
      this.#schedule();
    };
    try {
      const heldRequest = engine.heldRequest(taskId);
      const accepted = alreadyAccepted !== undefined ? { task: alreadyAccepted } : await this.#submitAttempt(peer, this.#attemptRequest(taskId, n, heldRequest), attemptKey(taskId, n, heldRequest), controller.signal);
      if (controller.signal.aborted) {
        // Cancelled while the member had not answered yet: it may hold the attempt all the same.
        if ("task" in accepted) void this.#o.client.cancel(peer, accepted.task.id).catch((err: unknown) => this.#o.onError?.("dispatch", err as Error));
        return;
      }
      if ("refused" in accepted) {
        const refusal = accepted.refused;
        this.#theirsFull(peer, refusal);
        const pinned = engine.heldTasks().find((t) => t.id === taskId)?.placement?.route !== undefined;
        if (!WAIT_AFTER.has(refusal.code) || (pinned && refusal.code !== "BUSY")) {
          await this.#conclude(taskId, { status: "failed", error: `${peer} refused it: ${refusal.message}` });
          return;
        }
        await engine.placeHeld(taskId, { runsOn: undefined, attempt: n, attemptId: undefined }, `${peer} did not take it: ${errorText(refusal)}`);
        this.#requeue(taskId, n, peer, waiting, 2000);
        return;
      }
      const task = accepted.task;
      attempt.attemptId = task.id;
      const retryable = task.metadata?.retryable === true;
      void engine.placeHeld(taskId, { attemptId: task.id }).catch(() => undefined);
      // An attempt still pending there (queued, or held for an approver's decision) is mirrored as it moves on.
      if (!started && task.status !== "pending") void engine.advanceHeld(taskId, "running", `running on ${peer} as task ${task.id}`).catch(() => undefined);
      // Taken up again (a restart, a retry), the copy resumes after what it already holds.
      const copied = (await engine.getTask(taskId))?.placement?.attemptSeq ?? 0;
      const end = await this.#follow(taskId, peer, task.id, retryable, controller.signal, copied);
      // The member's slot is free from now on: the next task need not wait for this one's outcome to be written here.
      freeSlot();
      if (controller.signal.aborted) return;
      if (end.kind === "lost" || (retryable && end.outcome.status === "failed" && LOST_ATTEMPT.test(end.outcome.error))) {
        const why = end.kind === "lost" ? "lease expired" : end.outcome.status === "failed" ? end.outcome.error : "lost";
        await engine.placeHeld(taskId, { runsOn: undefined, attemptId: undefined, attemptSeq: undefined, reason: `attempt ${n} on ${peer} lost (${why}); re-placing` });
        await engine.advanceHeld(taskId, "waiting", `attempt ${n} on ${peer} lost (${why}); re-placing`);
        this.#requeue(taskId, n, peer, waiting, 3 * this.#o.leaseTimeoutMs);
        return;
      }
      await this.#conclude(taskId, end.outcome);
    } catch (err) {
      if (!(err instanceof CoderClawError && err.code === "INVALID_TRANSITION")) {
        this.#o.onError?.("dispatch", err as Error);
        // Whatever went wrong, the task must not be left held with nobody following it: the same attempt is taken up again, under its key.
        if (!this.#stopped && !controller.signal.aborted) this.#retake(taskId, peer, n);
      }
    } finally {
      if (this.#attempts.get(taskId) === attempt) this.#attempts.delete(taskId);
      freeSlot();
    }
  }

  /** Take attempt `n` of a task up again in a while, if the task is still held here. */
  #retake(taskId: string, peer: string, n: number): void {
    const timer = setTimeout(() => {
      if (this.#stopped || this.#attempts.has(taskId) || !this.#o.engine.heldTasks().some((t) => t.id === taskId)) return;
      this.#reserve(peer);
      void this.#run(taskId, peer, n, true);
    }, RETAKE_AFTER_MS);
    timer.unref();
  }

  /** Put a task back in the queue after attempt `n`, keeping away from `peer` for `avoidMs`. */
  #requeue(taskId: string, n: number, peer: string, waiting: Waiting | undefined, avoidMs: number): void {
    const task = { id: taskId };
    const w: Waiting = waiting ?? { ...this.#fromEngine(task.id), order: this.#order++ };
    w.attempts = n;
    w.avoid.set(peer, Date.now() + avoidMs);
    delete w.reason;
    this.#waiting.set(taskId, w);
    this.#schedule();
  }

  #fromEngine(taskId: string): Waiting {
    const held = this.#o.engine.heldTasks().find((t) => t.id === taskId);
    const p = held?.placement ?? {};
    const w: Waiting = { id: taskId, agentId: held?.agentId ?? "echo", priority: p.priority ?? 0, order: 0, avoid: new Map(), attempts: p.attempt ?? 0 };
    if (p.route !== undefined) w.only = p.route;
    if (p.requires !== undefined) w.requires = p.requires;
    if (p.deadline !== undefined) w.deadline = p.deadline.getTime();
    return w;
  }

  /**
   * Submit an attempt until the member answers: a refusal is final, but a
   * submission that may or may not have arrived is sent again under the same
   * key (the member answers with the attempt it already has) and never
   * elsewhere, so the work cannot start twice.
   */
  async #submitAttempt(peer: string, request: TaskSubmitRequest, key: string, signal: AbortSignal | undefined, tries = Infinity): Promise<{ task: TaskState } | { refused: CoderClawError }> {
    let backoff = 100;
    for (let tried = 1; ; tried++) {
      try {
        // An answer that does not come within the lease is in doubt like a lost one: asked again, on a fresh stream.
        const timeoutMs = Math.max(ANSWER_WITHIN_MS, this.#o.leaseTimeoutMs);
        const sent = (await this.#o.beforeAttempt?.(peer, request)) ?? request;
        return { task: await this.#o.client.submit(peer, sent, undefined, { follow: true, key, fenceAfterMs: this.#o.leaseTimeoutMs, timeoutMs }) };
      } catch (err) {
        if (!(err instanceof CoderClawError)) throw err;
        if (!inDoubt(err) || tried >= tries || signal?.aborted === true || this.#stopped) return { refused: err };
      }
      await sleep(backoff, signal);
      backoff = Math.min(2000, backoff * 2);
    }
  }

  /** Follow an attempt to its end, mirroring it; "lost" when a retryable attempt's member stays silent past the lease. */
  async #follow(taskId: string, peer: string, attemptId: string, retryable: boolean, signal: AbortSignal, from: number): Promise<{ kind: "ended"; outcome: HeldOutcome } | { kind: "lost" }> {
    const { engine, client, leaseTimeoutMs } = this.#o;
    let after = from;
    let heard = Date.now();
    let noted = false;
    for (;;) {
      // A stream that stays silent past the lease, renewals included, may be dead without saying so: drop it and ask again.
      const watchdog = new AbortController();
      const watch = setInterval(() => {
        if (presumedLost(client.leaseOf(attemptId), heard, leaseTimeoutMs)) watchdog.abort();
      }, Math.max(100, leaseTimeoutMs / 2));
      const stop = (): void => watchdog.abort();
      signal.addEventListener("abort", stop, { once: true });
      try {
        for await (const e of client.subscribe(peer, attemptId, after, watchdog.signal)) {
          heard = Date.now();
          after = e.seq;
          if (isTerminalEvent(e)) return { kind: "ended", outcome: await this.#outcome(peer, attemptId, e, signal) };
          if (e.type === "output_added" && e.message !== undefined) this.#o.onMirrored?.(peer, e.message);
          if (e.type !== "created" && !engine.mirrorHeld(taskId, e)) {
            this.#cancelAttempt(taskId);
            return { kind: "lost" };
          }
        }
      } catch (err) {
        if (!(err instanceof CoderClawError && (err.code === "UNAVAILABLE" || err.code === "TIMEOUT"))) throw err;
      } finally {
        clearInterval(watch);
        signal.removeEventListener("abort", stop);
      }
      if (signal.aborted) return { kind: "lost" };
      if (presumedLost(client.leaseOf(attemptId), heard, leaseTimeoutMs)) {
        if (retryable) return { kind: "lost" };
        if (!noted) {
          noted = true;
          // Not retryable: only its member can say how it ended, so the task waits for it rather than guess.
          await engine.placeHeld(taskId, {}, `${peer} unreachable since ${new Date(heard).toISOString()}; waiting for it to return`);
        }
      }
      await sleep(Math.min(500, leaseTimeoutMs / 4), signal);
    }
  }

  /** How an attempt ended, with its output read from its member (asked again until it answers). */
  async #outcome(peer: string, attemptId: string, end: TaskEvent, signal: AbortSignal): Promise<HeldOutcome> {
    let carried = this.#o.client.finalState?.(attemptId);
    for (let backoff = 100; ; backoff = Math.min(2000, backoff * 2)) {
      const state = carried ?? (await this.#o.client.get(peer, attemptId).catch(() => undefined));
      carried = undefined;
      if (state !== undefined && state !== null && isTerminal(state.status)) {
        if (state.status === "completed") return { status: "completed", ...(state.output !== undefined && { output: state.output }), ...(end.data !== undefined && { data: end.data }) };
        if (state.status === "failed") return { status: "failed", error: state.error ?? end.message ?? "failed" };
        return { status: "cancelled", message: end.message ?? "cancelled" };
      }
      if (signal.aborted) return { status: "failed", error: "stopped" };
      await sleep(backoff, signal);
    }
  }

  async #conclude(taskId: string, outcome: HeldOutcome): Promise<void> {
    this.#concluding.add(taskId);
    try {
      await this.#o.engine.concludeHeld(taskId, outcome);
    } finally {
      this.#concluding.delete(taskId);
    }
  }

  /** A task ended here: a held one cancelled stops being placed and its attempt is cancelled where it runs. */
  #onEvent(taskId: string, event: TaskEvent): void {
    if (!isTerminalEvent(event)) return;
    // A task that ended here freed a local slot.
    if (this.#waiting.size > 0) this.#schedule();
    if (event.status !== "cancelled" || this.#concluding.has(taskId)) return;
    this.#waiting.delete(taskId);
    this.#cancelAttempt(taskId);
  }

  /** Stop following a task's attempt and cancel it where it runs, once. */
  #cancelAttempt(taskId: string): void {
    const attempt = this.#attempts.get(taskId);
    if (attempt === undefined || attempt.controller.signal.aborted) return;
    attempt.controller.abort();
    if (attempt.attemptId !== undefined) {
      const { peer, attemptId } = attempt;
      void this.#o.client.cancel(peer, attemptId).catch((err: unknown) => this.#o.onError?.("dispatch", err as Error));
    }
  }

  /** A member refused for want of a slot: count it full until its record is read again. */
  #theirsFull(peer: string, refusal: CoderClawError): void {
    if (refusal.code !== "BUSY") return;
    const record = this.#records?.list.find((c) => c.peerId === peer)?.record;
    this.#theirs.set(peer, record?.maxConcurrency ?? Number.MAX_SAFE_INTEGER);
  }

  /** Dial a member that pinned work waits for, at most every few seconds; failing to is what waiting means. */
  async #reach(peer: string): Promise<void> {
    const now = Date.now();
    if ((this.#dialled.get(peer) ?? 0) > now - REACH_EVERY_MS) return;
    this.#dialled.set(peer, now);
    await this.#o.reach?.(peer).catch(() => undefined);
  }

  /** Take a slot of `peer` (this node or a member) for a task about to go there. */
  #reserve(peer: string): void {
    if (peer === this.#o.selfId) this.#reservedHere++;
    else this.#ours.set(peer, (this.#ours.get(peer) ?? 0) + 1);
  }

  #release(peer: string): void {
    if (peer === this.#o.selfId) this.#reservedHere = Math.max(0, this.#reservedHere - 1);
    else this.#ours.set(peer, Math.max(0, (this.#ours.get(peer) ?? 1) - 1));
  }

  /** Run `fn` after every decision started before it, and before any started after. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.#turn;
    let done!: () => void;
    this.#turn = new Promise<void>((resolve) => (done = resolve));
    await before;
    try {
      return await fn();
    } finally {
      done();
    }
  }

  #freeHere(): number {
    return this.#o.engine.freeSlots() - this.#reservedHere;
  }

  async #availableHere(agentId: string): Promise<boolean> {
    const agent = this.#o.agents.get(agentId);
    return agent !== undefined && (await agent.availability()).available;
  }

  /**
   * The connected members' records, read again when older than the bound. Records
   * a little older than that still serve the decision at hand while the fresh ones
   * are read: a slot freed on a member must not wait for a round of record requests
   * to every member (what changed since, a member that is full after all, answers
   * BUSY and the task waits for the next pass, which the fresh records trigger).
   */
  async #memberRecords(): Promise<Candidate[]> {
    const maxAge = this.#o.recordsMaxAgeMs ?? 1000;
    const age = this.#records === undefined ? Infinity : Date.now() - this.#records.at;
    if (age < maxAge) return this.#records!.list;
    const refreshing = (this.#refreshing ??= this.#o
      .members()
      .catch(() => [] as Candidate[])
      .then((list) => {
        const members = list.filter((c) => this.#o.isMember(c.peerId) && c.peerId !== this.#o.selfId);
        this.#records = { at: Date.now(), list: members };
        this.#theirs.clear();
        // What a member's record counts as load beyond our own attempts there is others' work.
        for (const c of members) this.#theirs.set(c.peerId, Math.max(0, c.record.load - (this.#ours.get(c.peerId) ?? 0)));
        if (this.#waiting.size > 0) this.#schedule();
        return members;
      })
      .finally(() => (this.#refreshing = undefined)));
    if (age >= STALE_RECORDS_SERVE_MS) return refreshing;
    const connected = this.#o.isConnected;
    return this.#records!.list.filter((c) => connected?.(c.peerId) !== false);
  }

  /** Placement of `tasks` over this node and the connected members as they stand now. */
  async #decide(tasks: Waiting[]): Promise<ReturnType<typeof placeWaiting>> {
    const { agents, selfId } = this.#o;
    const local = this.#o.local?.() ?? {};
    const here: string[] = [];
    for (const a of agents.list()) if ((await a.availability()).available) here.push(a.info.id);
    const candidates: PlacementCandidate[] = [
      { peerId: selfId, local: true, agents: new Set(here), labels: new Set(local.labels ?? []), resources: local.resources ?? {}, freeSlots: this.#freeHere(), latencyMs: 0 },
    ];
    for (const c of await this.#memberRecords()) {
      const record = c.record;
      candidates.push({
        peerId: c.peerId,
        local: false,
        agents: new Set(record.agents),
        labels: new Set(record.labels ?? []),
        resources: record.resources ?? {},
        freeSlots: Math.max(0, record.maxConcurrency - (this.#ours.get(c.peerId) ?? 0) - (this.#theirs.get(c.peerId) ?? 0)),
        ...(c.latencyMs !== undefined && { latencyMs: c.latencyMs }),
      });
    }
    const now = Date.now();
    // A task pinned to a member goes there as soon as it has a slot: the member, not this node, judges whether it can run it.
    const pinned = tasks.filter((w) => w.only !== undefined).sort((x, y) => y.priority - x.priority || x.order - y.order);
    const pinnedPlaced: Array<{ taskId: string; peerId: string }> = [];
    const pinnedWaiting = new Map<string, string>();
    for (const w of pinned) {
      const c = candidates.find((k) => k.peerId === w.only);
      // Connected but its record not read yet (it just joined): send it there, and let the member answer.
      if (c === undefined && w.mayWait !== false && this.#o.isConnected?.(w.only!) === true) pinnedPlaced.push({ taskId: w.id, peerId: w.only! });
      else if (c === undefined) {
        pinnedWaiting.set(w.id, `waiting for member ${w.only} to connect`);
        void this.#reach(w.only!);
      }
      else if (c.freeSlots <= 0) pinnedWaiting.set(w.id, `waiting for a free slot on member ${w.only}`);
      else {
        c.freeSlots--;
        pinnedPlaced.push({ taskId: w.id, peerId: c.peerId });
      }
    }
    const waiting: WaitingTask[] = tasks
      .filter((w) => w.only === undefined)
      .map((w) => {
        const exclude = new Set<string>();
        for (const [peer, until] of w.avoid) if (until > now) exclude.add(peer);
        return { id: w.id, agentId: w.agentId, priority: w.priority, order: w.order, exclude, ...(w.requires !== undefined && { requires: w.requires }) };
      });
    const decision = placeWaiting(waiting, candidates);
    decision.placed.unshift(...pinnedPlaced);
    for (const [id, reason] of pinnedWaiting) decision.waiting.set(id, reason);
    return decision;
  }
}
