import { randomBytes } from "node:crypto";
import type { Libp2p } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { DeviceIdentity } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskEvent, TaskState, TaskSubmitRequest } from "../../src/contract/types.js";
import { AsyncQueue } from "../../src/util/async-queue.js";
import { ChannelPool, encodeCanonical, type FramedChannel } from "../../protocols/framing/index.js";
import { createTaskCodec, eventFromWire, stateFromWire, TASK_PROTOCOL, type SubmitEnvelope, type TaskMessage } from "../../protocols/task/index.js";
import { errorFromWire } from "../../src/transport/error-wire.js";

/** Options of {@link TaskClient}. */
export interface TaskClientOptions {
  libp2p: Libp2p;
  identity: DeviceIdentity;
  meshId: () => string | undefined;
  /** Deadline of one request/answer exchange, ms. Default 15 s. */
  requestTimeoutMs?: number;
}

type Answer = Extract<TaskMessage, { t: "state" | "bool" | "history" | "err" }>;

interface ChannelState {
  pending: Map<number, { resolve: (m: Answer) => void; reject: (e: unknown) => void }>;
  streams: Map<number, AsyncQueue<TaskMessage>>;
}

function toError(m: Extract<TaskMessage, { t: "err" }>): CoderClawError {
  return errorFromWire(m.field === undefined ? { code: m.code, message: m.message } : { code: m.code, message: m.message, field: m.field });
}

/**
 * The submitting side of the task protocol: one long-lived channel per executor
 * peer, requests paired with answers by id, update streams, and the lease times
 * each executor last vouched for our tasks.
 */
export class TaskClient {
  private readonly pool: ChannelPool<TaskMessage>;
  private readonly states = new Map<FramedChannel<TaskMessage>, ChannelState>();
  private readonly leases = new Map<string, { at: number; status: string }>();
  private nextRid = 1;

  constructor(private readonly options: TaskClientOptions) {
    this.pool = new ChannelPool({ libp2p: options.libp2p, protocol: TASK_PROTOCOL, codec: createTaskCodec(), openTimeoutMs: 5000 });
  }

  /** Submit a signed request to `peer`; resolves with the task as the executor accepted it. */
  async submit(peer: string, request: TaskSubmitRequest, session?: string): Promise<TaskState> {
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
    const answer = await this.request(peer, (rid) => ({ t: "submit", rid, envelope: bytes, sig: this.options.identity.sign(bytes) }));
    if (answer.t !== "state" || answer.state === null) throw new CoderClawError("PROTOCOL", `unexpected answer ${answer.t} to submit`);
    const state = stateFromWire(answer.state);
    this.leases.set(state.id, { at: Date.now(), status: state.status });
    return state;
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
    const rid = this.nextRid++;
    const queue = new AsyncQueue<TaskMessage>();
    state.streams.set(rid, queue);
    const onAbort = (): void => {
      channel.send({ t: "unsub", rid }).catch(() => undefined);
      queue.end();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await channel.send({ t: "sub", rid, taskId, after: afterSeq });
      for (let r = await queue.next(); !r.done; r = await queue.next()) {
        const m = r.value;
        if (m.t === "upd") {
          const e = eventFromWire(m.event);
          this.leases.set(taskId, { at: Date.now(), status: e.status });
          yield e;
        } else if (m.t === "end") return;
        else if (m.t === "err") throw toError(m);
      }
      if (!signal?.aborted) throw new CoderClawError("UNAVAILABLE", `stream from ${peer} broke`);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      state.streams.delete(rid);
    }
  }

  /** When the executor last renewed our lease on `taskId` (ms since epoch), if ever. */
  leaseOf(taskId: string): { at: number; status: string } | undefined {
    return this.leases.get(taskId);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async channel(peer: string): Promise<FramedChannel<TaskMessage>> {
    const channel = await this.pool.get(peerIdFromString(peer)).catch((err: unknown) => {
      throw new CoderClawError("UNAVAILABLE", `cannot reach ${peer}: ${(err as Error).message}`, { cause: err });
    });
    if (!this.states.has(channel)) {
      const state: ChannelState = { pending: new Map(), streams: new Map() };
      this.states.set(channel, state);
      void this.read(channel, state);
    }
    return channel;
  }

  private async read(channel: FramedChannel<TaskMessage>, state: ChannelState): Promise<void> {
    try {
      for await (const m of channel) {
        if (m.t === "lease") {
          for (const t of m.tasks) this.leases.set(t.id, { at: Date.now(), status: t.status });
          continue;
        }
        if (!("rid" in m)) continue;
        const stream = state.streams.get(m.rid);
        if (stream) {
          stream.push(m);
          if (m.t === "end" || m.t === "err") stream.end();
          continue;
        }
        const p = state.pending.get(m.rid);
        if (p && (m.t === "state" || m.t === "bool" || m.t === "history" || m.t === "err")) {
          state.pending.delete(m.rid);
          p.resolve(m);
        }
      }
    } catch {
      // The channel failed; everyone waiting on it is told below.
    } finally {
      this.states.delete(channel);
      const err = new CoderClawError("UNAVAILABLE", `connection to ${channel.peer} closed`);
      for (const p of state.pending.values()) p.reject(err);
      for (const s of state.streams.values()) s.end();
    }
  }

  private async request(peer: string, build: (rid: number) => TaskMessage): Promise<Answer> {
    const channel = await this.channel(peer);
    const state = this.states.get(channel)!;
    const rid = this.nextRid++;
    const answer = await new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        state.pending.delete(rid);
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
      channel.send(build(rid)).catch((err: unknown) => {
        clearTimeout(timer);
        state.pending.delete(rid);
        reject(new CoderClawError("UNAVAILABLE", `cannot send to ${peer}: ${(err as Error).message}`));
      });
    });
    if (answer.t === "err") throw toError(answer);
    return answer;
  }
}
