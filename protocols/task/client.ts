import { randomBytes } from "node:crypto";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskEvent, TaskState, TaskSubmitRequest } from "../../src/contract/types.js";
import { isTerminal } from "../../src/engine/state-machine.js";
import { errorFromWire } from "../../src/transport/error-wire.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { TurnBatch } from "../../src/util/turn-batch.js";
import { encodeCanonical } from "../framing/codec.js";
import { FrameTimeoutError, FramingError } from "../framing/errors.js";
import type { Exchange, RequestChannel, RequestChannelOptions, RequestShape } from "../framing/request-channel.js";
import { LeaseBook, type Lease } from "./lease.js";
import { MAX_SUBMITS_PER_MESSAGE, type SubmitEnvelope, type TaskMessage } from "./messages.js";
import { StreamedOutput } from "./streamed-output.js";
import { submitSignedBytes } from "./submit-signature.js";
import { eventFromWire, stateFromWire } from "./wire.js";

/** How task-protocol messages carry request ids: every answer by `rid`; a lease renewal answers nothing. */
export const taskRequestShape: RequestShape<TaskMessage> = {
  answerTo: (m) => (m.t === "lease" || m.t === "leased" || m.t === "submit" ? undefined : m.rid),
  failure: (m) => (m.t === "err" ? errorFromWire(m) : undefined),
  ends: (m) => m.t === "end" || (m.t === "accepted" && m.end),
  cancel: (rid) => ({ t: "unsub", rid }),
};

/** Options of {@link TaskRequester}. */
export interface TaskRequesterOptions {
  /** The request channel to an executor, opened with {@link TaskRequester.requestOptions}; rejects when it cannot be reached. */
  channelTo(peer: string): Promise<RequestChannel<TaskMessage>>;
  /** Who submits: its device id and signing key. */
  identity: { readonly peerId: string; sign(bytes: Uint8Array): Uint8Array };
  meshId: () => string | undefined;
  /** Deadline of one request/answer exchange, ms. Default 15 s. */
  requestTimeoutMs?: number;
  /** Events of a followed task held until a subscriber claims them; past this the task is let go. Default 1,000. */
  maxUnclaimedEvents?: number;
}

type Accepted = Extract<TaskMessage, { t: "accepted" }>;

/** A submission waiting to go out in the next `submit` message to its executor. */
interface QueuedSubmit {
  rid: number;
  envelope: Uint8Array;
  follow: boolean;
  sent: { resolve: () => void; reject: (err: unknown) => void };
}

interface ChannelState {
  /**
   * Submissions of this turn of the event loop: sent at once, signed alone, on a
   * channel with no other request waiting for its answer; under load, together
   * at the end of the turn under one signature (see submitSignedBytes), so a
   * burst costs both ends one signature instead of one per task.
   */
  submits: TurnBatch<QueuedSubmit>;
}

/** A followed submission's stream, held from its answer until a subscriber claims it. */
interface Followed {
  peer: string;
  requests: RequestChannel<TaskMessage>;
  exchange: Exchange<TaskMessage>;
  /** The answer, with the task's first events. */
  accepted?: Accepted;
  /** Events received while no subscriber has claimed the task; undefined once claimed. */
  unclaimed?: number;
}

/** Envelope bytes joined under one signature up to this much; a larger envelope goes in a message of its own. */
const SUBMIT_MESSAGE_BYTES = 256 * 1024;

/** Followed tasks waiting for a subscriber; the oldest is let go beyond this. */
const MAX_UNCLAIMED_TASKS = 1024;

/**
 * The submitting side of the task protocol over one request channel per
 * executor: signed submissions (batched per turn under one signature), followed
 * submissions whose events wait for a subscriber, subscriptions resumed after a
 * sequence number, cancel and queries, and the leases executors renew.
 */
export class TaskRequester {
  readonly #options: TaskRequesterOptions;
  readonly #leases = new LeaseBook();
  readonly #channels = new WeakMap<RequestChannel<TaskMessage>, ChannelState>();
  /** Followed tasks whose events wait for a subscriber, oldest first. */
  readonly #unclaimed = new Map<string, Followed>();
  /** Final states that came with a task's last events, until read with {@link TaskRequester.finalState}. */
  readonly #finals = new Map<string, TaskState>();

  constructor(options: TaskRequesterOptions) {
    this.#options = options;
  }

  /** The options each request channel to an executor is opened with: the deadline, and where lease renewals go. */
  get requestOptions(): RequestChannelOptions<TaskMessage> {
    return {
      timeoutMs: this.#timeoutMs,
      onUnsolicited: (m, channel) => {
        if (m.t !== "lease") return;
        this.#leases.renewAll(m, channel.peer);
        // The executor fences what it cannot get acknowledged: say at once that this round arrived.
        void channel.send({ t: "leased", round: m.round }).catch(() => undefined);
      },
    };
  }

  /**
   * Submit a signed request to `peer`; resolves with the task as the executor
   * accepted it. With `follow`, the executor streams the task's events from then
   * on over the same request, and the next {@link TaskRequester.subscribe} to the
   * task consumes them without asking again: a task that ends at once needs no
   * second round trip. With `key`, a repeated submission (after a lost answer,
   * or a restart of this node) gets the task the executor already has. With
   * `fenceAfterMs`, the executor stops a retryable task it cannot get its
   * lease acknowledged for before this node would re-place it. With
   * `timeoutMs`, the answer is awaited that long, and a channel that gave none
   * is closed, so that the next submission opens a fresh stream.
   */
  async submit(peer: string, request: TaskSubmitRequest, session?: string, options: { follow?: boolean; key?: string; fenceAfterMs?: number; timeoutMs?: number } = {}): Promise<TaskState> {
    const meshId = this.#options.meshId();
    if (!meshId) throw new CoderClawError("UNAVAILABLE", "this node is not in a mesh yet (coderclaw mesh create | join)");
    const envelope: SubmitEnvelope = {
      request: JSON.parse(JSON.stringify(request)) as SubmitEnvelope["request"],
      requester: this.#options.identity.peerId,
      meshId,
      issuedAt: Date.now(),
      nonce: randomBytes(16),
      ...(session !== undefined && { session }),
      ...(options.key !== undefined && { key: options.key }),
      ...(options.fenceAfterMs !== undefined && { fenceAfterMs: options.fenceAfterMs }),
    };
    const bytes = encodeCanonical(envelope);
    const follow = options.follow === true;
    const requests = await this.#channel(peer);
    const state = this.#state(requests);
    const send = (rid: number): Promise<void> => new Promise<void>((resolve, reject) => state.submits.push({ rid, envelope: bytes, follow, sent: { resolve, reject } }));
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    /** A submission with a deadline of its own that got no answer: the channel is suspect, and the next one opens afresh. */
    const answerTo = async (exchange: Exchange<TaskMessage>): Promise<TaskMessage | undefined> => {
      try {
        return await this.#next(peer, exchange);
      } catch (err) {
        if (options.timeoutMs !== undefined && err instanceof CoderClawError && err.code === "TIMEOUT") void requests.close().catch(() => undefined);
        throw err;
      }
    };
    if (!follow) {
      const answer = await answerTo(requests.open(send, { timeoutMs }));
      if (answer?.t !== "state" || answer.state === null) throw new CoderClawError("PROTOCOL", `unexpected answer ${answer?.t ?? "(none)"} to submit`);
      return this.#accepted(stateFromWire(answer.state), peer);
    }
    const followed: Partial<Followed> & { unclaimed: number } = { peer, requests, unclaimed: 0 };
    const exchange = requests.open(send, { stream: true, timeoutMs, onMessage: (m) => this.#hold(followed as Followed, m) });
    followed.exchange = exchange;
    const answer = await answerTo(exchange);
    if (answer?.t !== "accepted") {
      exchange.close();
      throw new CoderClawError("PROTOCOL", `unexpected answer ${answer?.t ?? "(none)"} to a followed submit`);
    }
    followed.accepted = answer;
    const task = this.#accepted(stateFromWire(answer.state), peer);
    this.#unclaimed.set(task.id, followed as Followed);
    if (this.#unclaimed.size > MAX_UNCLAIMED_TASKS) this.#release(this.#unclaimed.keys().next().value!);
    return task;
  }

  async cancel(peer: string, taskId: string): Promise<boolean> {
    const a = await this.#request(peer, (rid) => ({ t: "cancel", rid, taskId }));
    if (a.t !== "bool") throw new CoderClawError("PROTOCOL", `unexpected answer ${a.t} to cancel`);
    return a.value;
  }

  async get(peer: string, taskId: string): Promise<TaskState | null> {
    const a = await this.#request(peer, (rid) => ({ t: "get", rid, taskId }));
    if (a.t !== "state") throw new CoderClawError("PROTOCOL", `unexpected answer ${a.t} to get`);
    return a.state === null ? null : stateFromWire(a.state);
  }

  async events(peer: string, taskId: string): Promise<TaskEvent[]> {
    const a = await this.#request(peer, (rid) => ({ t: "events", rid, taskId }));
    if (a.t !== "history") throw new CoderClawError("PROTOCOL", `unexpected answer ${a.t} to events`);
    return a.events.map(eventFromWire);
  }

  /**
   * History after `afterSeq` then live updates from the executor, ending after a
   * terminal status. Throws UNAVAILABLE when the channel breaks: the caller
   * resumes with the last sequence number it saw.
   */
  async *subscribe(peer: string, taskId: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<TaskEvent> {
    const requests = await this.#channel(peer);
    this.#leases.executes(taskId, peer);
    const followed = this.#claim(peer, taskId, requests);
    const exchange =
      followed?.exchange ?? requests.open((rid) => requests.channel.send({ t: "sub", rid, taskId, after: afterSeq }), { stream: true, ...(signal !== undefined && { signal }) });
    const onAbort = (): void => exchange.close();
    if (followed !== undefined) signal?.addEventListener("abort", onAbort, { once: true });
    let ended = false;
    /** The events of one message the subscriber has not seen yet, each renewing the task's lease. */
    const unseen = (events: Accepted["events"]): TaskEvent[] =>
      events.flatMap((w) => {
        // A followed task's events start at its first; a subscriber resuming later skips what it saw.
        if (w.seq <= afterSeq) return [];
        const e = eventFromWire(w);
        this.#leases.renew(taskId, e.status);
        ended = isTerminal(e.status);
        return [e];
      });
    // Every event this request carried, seen or not: the executor may leave that output out of the final state.
    const streamed = new StreamedOutput();
    try {
      if (followed?.accepted !== undefined) {
        streamed.add(followed.accepted.events);
        this.#keepFinal(followed.accepted, streamed);
        yield* unseen(followed.accepted.events);
        if (followed.accepted.end) return;
      }
      for (let m = await this.#next(peer, exchange); m !== undefined; m = await this.#next(peer, exchange)) {
        if (m.t === "upd") {
          streamed.add(m.events);
          this.#keepFinal(m, streamed);
          yield* unseen(m.events);
        } else if (m.t === "end") return;
      }
      if (!signal?.aborted) throw new CoderClawError("UNAVAILABLE", `stream from ${peer} broke`);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // After a task's end its executor ends the stream itself; before, a subscriber that stopped reading cancels it.
      if (!ended) exchange.close();
    }
  }

  /** The final state that came with a followed task's last events, once: undefined when none came (ask with `get`). */
  finalState(taskId: string): TaskState | undefined {
    const state = this.#finals.get(taskId);
    this.#finals.delete(taskId);
    return state;
  }

  #keepFinal(m: Pick<Accepted, "final" | "streamed">, streamed: StreamedOutput): void {
    const wire = m.final;
    if (wire === undefined) return;
    const output = m.streamed === true ? streamed.text() : wire.output;
    // Output left out that this end could not keep: none is kept, and the follower asks for the state.
    if (m.streamed === true && output === undefined) return;
    this.#finals.set(wire.id, stateFromWire({ ...wire, ...(output !== undefined && { output }) }));
    // Kept for the subscriber that reads it next; one nobody reads goes after the next thousand.
    if (this.#finals.size > MAX_UNCLAIMED_TASKS) this.#finals.delete(this.#finals.keys().next().value!);
  }

  /** When the executor last renewed our lease on `taskId`; undefined if never, or once the task has ended. */
  leaseOf(taskId: string): Lease | undefined {
    return this.#leases.of(taskId);
  }

  get #timeoutMs(): number {
    return this.#options.requestTimeoutMs ?? 15_000;
  }

  async #channel(peer: string): Promise<RequestChannel<TaskMessage>> {
    return this.#options.channelTo(peer).catch((err: unknown) => {
      throw new CoderClawError("UNAVAILABLE", `cannot reach ${peer}: ${(err as Error).message}`, { cause: err });
    });
  }

  #state(requests: RequestChannel<TaskMessage>): ChannelState {
    let state = this.#channels.get(requests);
    if (state === undefined) {
      state = {
        // A submission is awaited itself when queued: any other means the executor is busy with our requests.
        submits: new TurnBatch((submits) => this.#sendSubmits(requests, submits), () => requests.awaiting <= 1),
      };
      this.#channels.set(requests, state);
    }
    return state;
  }

  /** Send queued submissions, as many per message and signature as the limits allow. */
  #sendSubmits(requests: RequestChannel<TaskMessage>, submits: QueuedSubmit[]): void {
    for (const run of runsBySize(submits, (q) => q.envelope.byteLength, SUBMIT_MESSAGE_BYTES)) {
      for (let i = 0; i < run.length; i += MAX_SUBMITS_PER_MESSAGE) {
        const group = run.slice(i, i + MAX_SUBMITS_PER_MESSAGE);
        const items = group.map(({ rid, envelope, follow }) => (follow ? { rid, envelope, follow } : { rid, envelope }));
        const sig = this.#options.identity.sign(submitSignedBytes(group.map((q) => q.envelope)));
        requests.channel.send({ t: "submit", sig, items }).then(
          () => group.forEach((q) => q.sent.resolve()),
          (err: unknown) => group.forEach((q) => q.sent.reject(err)),
        );
      }
    }
  }

  #accepted(state: TaskState, peer: string): TaskState {
    this.#leases.executes(state.id, peer);
    this.#leases.renew(state.id, state.status);
    return state;
  }

  /** Count what a followed task receives while unclaimed; past the limit the executor is told to stop, and a later subscriber asks afresh. */
  #hold(followed: Followed, m: TaskMessage): void {
    if (followed.unclaimed === undefined || (m.t !== "accepted" && m.t !== "upd")) return;
    followed.unclaimed += m.events.length;
    if (followed.unclaimed > (this.#options.maxUnclaimedEvents ?? 1000) && m.t === "upd") this.#release(m.taskId);
  }

  /** The stream of a followed submit of `taskId` on this channel, now claimed by a subscriber. */
  #claim(peer: string, taskId: string, requests: RequestChannel<TaskMessage>): Followed | undefined {
    const held = this.#unclaimed.get(taskId);
    if (held === undefined || held.peer !== peer) return undefined;
    this.#unclaimed.delete(taskId);
    if (held.requests !== requests) return undefined;
    delete held.unclaimed;
    return held;
  }

  /** Stop holding a followed task's events: the executor stops sending them, and a later subscriber asks afresh. */
  #release(taskId: string): void {
    const held = this.#unclaimed.get(taskId);
    if (held === undefined) return;
    this.#unclaimed.delete(taskId);
    held.exchange.close();
  }

  /** Send a request and wait for its answer. */
  async #request(peer: string, build: (rid: number) => TaskMessage): Promise<TaskMessage> {
    const requests = await this.#channel(peer);
    return this.#explained(peer, requests.request(build));
  }

  /** An exchange's next answer. */
  #next(peer: string, exchange: Exchange<TaskMessage>): Promise<TaskMessage | undefined> {
    return this.#explained(peer, exchange.next());
  }

  /** A channel that timed out or failed is a TIMEOUT or UNAVAILABLE, as the contract's callers expect. */
  async #explained<R>(peer: string, pending: Promise<R>): Promise<R> {
    try {
      return await pending;
    } catch (err) {
      if (err instanceof FrameTimeoutError) throw new CoderClawError("TIMEOUT", `no answer from ${peer}`, { cause: err });
      if (err instanceof FramingError) throw new CoderClawError("UNAVAILABLE", `connection to ${peer} closed`, { cause: err });
      // The executor cannot name itself as this node's users know it: say which member was full.
      if (err instanceof CoderClawError && err.code === "BUSY") throw new CoderClawError("BUSY", err.message.replace(/^no free slot/, `no free slot on ${peer}`), { cause: err });
      throw err;
    }
  }
}
