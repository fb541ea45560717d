import { randomBytes } from "node:crypto";
import type { Libp2p } from "@libp2p/interface";
import type { DeviceIdentity } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskEvent, TaskState, TaskStatus, TaskSubmitRequest } from "../../src/contract/types.js";
import { isTerminal } from "../../src/engine/state-machine.js";
import { AsyncQueue } from "../../src/util/async-queue.js";
import { ChannelPool, encodeCanonical, type FramedChannel } from "../../protocols/framing/index.js";
import {
  createTaskCodec,
  eventFromWire,
  MAX_SUBMITS_PER_MESSAGE,
  stateFromWire,
  submitSignedBytes,
  TASK_PROTOCOL,
  type SubmitEnvelope,
  type TaskMessage,
} from "../../protocols/task/index.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { TurnBatch } from "../../src/util/turn-batch.js";
import { errorFromWire } from "../../src/transport/error-wire.js";

/** Options of {@link TaskClient}. */
export interface TaskClientOptions {
  libp2p: Libp2p;
  identity: DeviceIdentity;
  meshId: () => string | undefined;
  /** Deadline of one request/answer exchange, ms. Default 15 s. */
  requestTimeoutMs?: number;
  /** Events of a followed task held until a subscriber claims them; past this the task is let go. Default 1,000. */
  maxUnclaimedEvents?: number;
}

type Answer = Extract<TaskMessage, { t: "state" | "accepted" | "bool" | "history" | "err" }>;
type StreamMessage = Extract<TaskMessage, { t: "upd" | "end" | "err" }>;

/** The events of one subscription or followed submit, in arrival order. */
interface EventStream {
  queue: AsyncQueue<StreamMessage>;
  /** Events received while no subscriber has claimed a followed task yet; undefined once claimed. */
  unclaimed?: number;
  /** The followed task, once the executor accepted it. */
  taskId?: string;
}

/** A submission waiting to go out in the next `submit` message to its executor. */
interface QueuedSubmit {
  rid: number;
  envelope: Uint8Array;
  follow: boolean;
  sent: { resolve: () => void; reject: (err: unknown) => void };
}

interface ChannelState {
  pending: Map<number, { resolve: (m: Answer) => void; reject: (e: unknown) => void }>;
  streams: Map<number, EventStream>;
  /**
   * Submissions of this turn of the event loop: sent at once, signed alone, on a
   * channel with no other request waiting for its answer; under load, together
   * at the end of the turn under one signature (see submitSignedBytes), so a
   * burst costs both ends one signature instead of one per task.
   */
  submits: TurnBatch<QueuedSubmit>;
}

/** Envelope bytes joined under one signature up to this much; a larger envelope goes in a message of its own. */
const SUBMIT_MESSAGE_BYTES = 256 * 1024;

/** Followed tasks waiting for a subscriber; the oldest is let go beyond this. */
const MAX_UNCLAIMED_TASKS = 1024;


/**
 * The submitting side of the task protocol: one long-lived channel per executor
 * peer, requests paired with answers by id, update streams, and the lease times
 * each executor last vouched for our tasks.
 */
export class TaskClient {
  private readonly pool: ChannelPool<TaskMessage>;
  private readonly states = new Map<FramedChannel<TaskMessage>, ChannelState>();
  private readonly leases = new Map<string, { at: number; status: string }>();
  /** Followed tasks whose events wait for a subscriber, oldest first. */
  private readonly unclaimed = new Map<string, { peer: string; rid: number }>();
  private nextRid = 1;

  constructor(private readonly options: TaskClientOptions) {
    this.pool = new ChannelPool({ libp2p: options.libp2p, protocol: TASK_PROTOCOL, codec: createTaskCodec(), openTimeoutMs: 5000 });
  }

  /**
   * Submit a signed request to `peer`; resolves with the task as the executor
   * accepted it. With `follow`, the executor streams the task's events from then
   * on over the same request, and the next {@link TaskClient.subscribe} to the
   * task consumes them without asking again: a task that ends at once needs no
   * second round trip.
   */
  async submit(peer: string, request: TaskSubmitRequest, session?: string, options: { follow?: boolean } = {}): Promise<TaskState> {
    const meshId = this.options.meshId();
    if (!meshId) throw new CoderClawError("UNAVAILABLE", "this node is not in a mesh yet (coderclaw mesh create | join)");
    const envelope: SubmitEnvelope = {
      request: JSON.parse(JSON.stringify(request)) as SubmitEnvelope["request"],
      requester: this.options.identity.peerId,
      meshId,
      issuedAt: Date.now(),
      nonce: randomBytes(16),
      ...(session !== undefined && { session }),
    };
    const bytes = encodeCanonical(envelope);
    const follow = options.follow === true;
    const submit = (_channel: FramedChannel<TaskMessage>, state: ChannelState, rid: number): Promise<void> =>
      new Promise<void>((resolve, reject) => state.submits.push({ rid, envelope: bytes, follow, sent: { resolve, reject } }));
    if (!follow) {
      const answer = await this.exchange(peer, submit);
      if (answer.t !== "state" || answer.state === null) throw new CoderClawError("PROTOCOL", `unexpected answer ${answer.t} to submit`);
      return this.accepted(stateFromWire(answer.state));
    }
    const stream: EventStream = { queue: new AsyncQueue(), unclaimed: 0 };
    const answer = await this.exchange(peer, submit, stream);
    if (answer.t !== "accepted") throw new CoderClawError("PROTOCOL", `unexpected answer ${answer.t} to a followed submit`);
    const state = this.accepted(stateFromWire(answer.state));
    this.unclaimed.set(state.id, { peer, rid: answer.rid });
    if (this.unclaimed.size > MAX_UNCLAIMED_TASKS) this.release(this.unclaimed.keys().next().value!);
    return state;
  }

  /** Send queued submissions, as many per message and signature as the limits allow. */
  private sendSubmits(channel: FramedChannel<TaskMessage>, submits: QueuedSubmit[]): void {
    for (const run of runsBySize(submits, (q) => q.envelope.byteLength, SUBMIT_MESSAGE_BYTES)) {
      for (let i = 0; i < run.length; i += MAX_SUBMITS_PER_MESSAGE) {
        const group = run.slice(i, i + MAX_SUBMITS_PER_MESSAGE);
        const items = group.map(({ rid, envelope, follow }) => (follow ? { rid, envelope, follow } : { rid, envelope }));
        const sig = this.options.identity.sign(submitSignedBytes(group.map((q) => q.envelope)));
        channel.send({ t: "submit", sig, items }).then(
          () => group.forEach((q) => q.sent.resolve()),
          (err: unknown) => group.forEach((q) => q.sent.reject(err)),
        );
      }
    }
  }

  private accepted(state: TaskState): TaskState {
    this.renew(state.id, state.status);
    return state;
  }

  /** The executor vouched for `taskId` now. An ended task needs no lease, and keeping one per task ever submitted would grow without bound. */
  private renew(taskId: string, status: TaskStatus): void {
    if (isTerminal(status)) this.leases.delete(taskId);
    else this.leases.set(taskId, { at: Date.now(), status });
  }

  async cancel(peer: string, taskId: string): Promise<boolean> {
    const a = await this.request(peer, (rid) => ({ t: "cancel", rid, taskId }));
    if (a.t !== "bool") throw new CoderClawError("PROTOCOL", `unexpected answer ${a.t} to cancel`);
    return a.value;
  }

  async get(peer: string, taskId: string): Promise<TaskState | null> {
    const a = await this.request(peer, (rid) => ({ t: "get", rid, taskId }));
    if (a.t !== "state") throw new CoderClawError("PROTOCOL", `unexpected answer ${a.t} to get`);
    return a.state === null ? null : stateFromWire(a.state);
  }

  async events(peer: string, taskId: string): Promise<TaskEvent[]> {
    const a = await this.request(peer, (rid) => ({ t: "events", rid, taskId }));
    if (a.t !== "history") throw new CoderClawError("PROTOCOL", `unexpected answer ${a.t} to events`);
    return a.events.map(eventFromWire);
  }

  /**
   * History after `afterSeq` then live updates from the executor, ending after a
   * terminal status. Throws UNAVAILABLE when the channel breaks: the caller
   * resumes with the last sequence number it saw.
   */
  async *subscribe(peer: string, taskId: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<TaskEvent> {
    const channel = await this.channel(peer);
    const state = this.states.get(channel)!;
    const followed = this.claim(peer, taskId, state);
    const rid = followed?.rid ?? this.nextRid++;
    const stream = followed?.stream ?? { queue: new AsyncQueue<StreamMessage>() };
    state.streams.set(rid, stream);
    const onAbort = (): void => {
      channel.send({ t: "unsub", rid }).catch(() => undefined);
      stream.queue.end();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (!followed) await channel.send({ t: "sub", rid, taskId, after: afterSeq });
      for (let r = await stream.queue.next(); !r.done; r = await stream.queue.next()) {
        const m = r.value;
        if (m.t === "upd") {
          for (const w of m.events) {
            // A followed task's events start at its first; a subscriber resuming later skips what it saw.
            if (w.seq <= afterSeq) continue;
            const e = eventFromWire(w);
            this.renew(taskId, e.status);
            yield e;
          }
        } else if (m.t === "end") return;
        else throw errorFromWire(m);
      }
      if (!signal?.aborted) throw new CoderClawError("UNAVAILABLE", `stream from ${peer} broke`);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      state.streams.delete(rid);
    }
  }

  /** The stream of a followed submit of `taskId` on this channel, now claimed by a subscriber. */
  private claim(peer: string, taskId: string, state: ChannelState): { rid: number; stream: EventStream } | undefined {
    const held = this.unclaimed.get(taskId);
    if (held === undefined || held.peer !== peer) return undefined;
    this.unclaimed.delete(taskId);
    const stream = state.streams.get(held.rid);
    if (stream === undefined) return undefined;
    delete stream.unclaimed;
    return { rid: held.rid, stream };
  }

  /** Stop holding a followed task's events: the executor stops sending them, and a later subscriber asks afresh. */
  private release(taskId: string): void {
    const held = this.unclaimed.get(taskId);
    if (held === undefined) return;
    this.unclaimed.delete(taskId);
    for (const [channel, state] of this.states) {
      const stream = state.streams.get(held.rid);
      if (stream?.taskId !== taskId) continue;
      state.streams.delete(held.rid);
      stream.queue.end();
      channel.send({ t: "unsub", rid: held.rid }).catch(() => undefined);
    }
  }

  /** When the executor last renewed our lease on `taskId` (ms since epoch); undefined if never, or once the task has ended. */
  leaseOf(taskId: string): { at: number; status: string } | undefined {
    return this.leases.get(taskId);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async channel(peer: string): Promise<FramedChannel<TaskMessage>> {
    const channel = await this.pool.get(peer).catch((err: unknown) => {
      throw new CoderClawError("UNAVAILABLE", `cannot reach ${peer}: ${(err as Error).message}`, { cause: err });
    });
    if (!this.states.has(channel)) {
      const pending: ChannelState["pending"] = new Map();
      const state: ChannelState = {
        pending,
        streams: new Map(),
        // A submission is pending itself when queued: any other means the executor is busy with our requests.
        submits: new TurnBatch((submits) => this.sendSubmits(channel, submits), () => pending.size <= 1),
      };
      this.states.set(channel, state);
      void this.read(channel, state);
    }
    return channel;
  }

  private async read(channel: FramedChannel<TaskMessage>, state: ChannelState): Promise<void> {
    try {
      for await (const m of channel) {
        if (m.t === "lease") {
          for (const t of m.tasks) this.renew(t.id, t.status);
          continue;
        }
        if (!("rid" in m)) continue;
        const stream = state.streams.get(m.rid);
        if (m.t === "accepted") {
          if (stream) {
            stream.taskId = m.state.id;
            if (m.events.length > 0) this.deliver(stream, { t: "upd", rid: m.rid, taskId: m.state.id, events: m.events });
            if (m.end) this.deliver(stream, { t: "end", rid: m.rid });
          }
        } else if (stream && (m.t === "upd" || m.t === "end" || (m.t === "err" && !state.pending.has(m.rid)))) {
          this.deliver(stream, m);
          continue;
        }
        const p = state.pending.get(m.rid);
        if (p && (m.t === "state" || m.t === "accepted" || m.t === "bool" || m.t === "history" || m.t === "err")) {
          state.pending.delete(m.rid);
          if (m.t === "err") {
            state.streams.delete(m.rid);
            stream?.queue.end();
          }
          p.resolve(m);
        }
      }
    } catch {
      // The channel failed; everyone waiting on it is told below.
    } finally {
      this.states.delete(channel);
      const err = new CoderClawError("UNAVAILABLE", `connection to ${channel.peer} closed`);
      for (const p of state.pending.values()) p.reject(err);
      for (const s of state.streams.values()) s.queue.end();
    }
  }

  /** Queue a stream message; a followed task nobody has claimed yet is let go once it holds too many events. */
  private deliver(stream: EventStream, m: StreamMessage): void {
    stream.queue.push(m);
    if (m.t !== "upd") stream.queue.end();
    if (stream.unclaimed === undefined) return;
    stream.unclaimed += m.t === "upd" ? m.events.length : 0;
    // Past the limit the executor is told to stop, and a later subscriber asks afresh.
    if (stream.unclaimed > (this.options.maxUnclaimedEvents ?? 1000) && stream.taskId !== undefined) this.release(stream.taskId);
  }

  /** Send a request and wait for its answer. */
  private request(peer: string, build: (rid: number) => TaskMessage): Promise<Answer> {
    return this.exchange(peer, (channel, _state, rid) => channel.send(build(rid)));
  }

  /** Send what `send` sends on a new rid and wait for the answer on that rid; `stream` receives what follows it. */
  private async exchange(
    peer: string,
    send: (channel: FramedChannel<TaskMessage>, state: ChannelState, rid: number) => Promise<void>,
    stream?: EventStream,
  ): Promise<Answer> {
    const channel = await this.channel(peer);
    const state = this.states.get(channel)!;
    const rid = this.nextRid++;
    if (stream) state.streams.set(rid, stream);
    const answer = await new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        state.pending.delete(rid);
        state.streams.delete(rid);
        reject(new CoderClawError("TIMEOUT", `no answer from ${peer}`));
      }, this.options.requestTimeoutMs ?? 15_000);
      state.pending.set(rid, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      send(channel, state, rid).catch((err: unknown) => {
        clearTimeout(timer);
        state.pending.delete(rid);
        state.streams.delete(rid);
        reject(new CoderClawError("UNAVAILABLE", `cannot send to ${peer}: ${(err as Error).message}`));
      });
    });
    if (answer.t === "err") throw errorFromWire(answer);
    return answer;
  }
}
