import type { Libp2p } from "@libp2p/interface";
import { ed25519, publicKeyOfDeviceId } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import { errorToWire } from "../../src/transport/error-wire.js";
import type { TaskEvent, TaskState, TaskSubmitRequest } from "../../src/contract/types.js";
import type { TaskEngine } from "../../src/engine/task-engine.js";
import type { AgentRegistry } from "../../src/agents/executor.js";
import { isTerminal, isTerminalEvent } from "../../src/engine/state-machine.js";
import { coalesce } from "../../src/util/coalesce.js";
import { createReplayGuard } from "./replay-guard.js";
import type { ReplayStore } from "./replay-store.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { decodeStrict, handleFramed, PeerLimitError, type FramedChannel, type PeerRateLimiter } from "../../protocols/framing/index.js";
import {
  createTaskCodec,
  eventToWire,
  MAX_EVENTS_PER_MESSAGE,
  stateToWire,
  submitEnvelopeSchema,
  submitSignedBytes,
  TASK_PROTOCOL,
  type SubmitEnvelope,
  type TaskMessage,
} from "../../protocols/task/index.js";

/**
 * What the executing node decides about a remote submission, from the signed
 * request alone. `recorded`, when given, settles once the decision is on record
 * (the audit log): the task is stored meanwhile but starts only after it
 * resolves, and is cancelled unstarted when it rejects.
 */
export type AuthorizeSubmit = (submit: { peer: string; envelope: SubmitEnvelope }) => Promise<SubmitDecision> | SubmitDecision;

/** See {@link AuthorizeSubmit}. */
export interface SubmitDecision {
  allowed: boolean;
  reason?: string;
  recorded?: Promise<void>;
}

/** Options of {@link startTaskServer}. */
export interface TaskServerOptions {
  libp2p: Libp2p;
  engine: TaskEngine;
  /** To tell submitters whether a task may be re-routed if this node dies. */
  agents: AgentRegistry;
  /** This node's mesh; submissions for another mesh are refused. */
  meshId: () => string | undefined;
  /** Members (verified or above) only; others' streams are reset unread. */
  isMember: (peerId: string) => boolean | Promise<boolean>;
  /** The security re-check of each submission; default: members may submit. */
  authorize?: AuthorizeSubmit;
  /** The security check of a remote cancel; default: members may cancel. */
  authorizeCancel?: (peer: string, taskId: string) => Promise<{ allowed: boolean; reason?: string }>;
  /** Lease renewals sent to each submitter at this interval, ms. Default 1,000. */
  leaseIntervalMs?: number;
  /** A submission signed more than this far from our clock is refused (replay window), ms. Default 5 min. */
  maxClockSkewMs?: number;
  /** How far behind a peer's newest submission another of its submissions may be signed, ms (see ReplayGuard). Default 60 s. */
  replayMemoryMs?: number;
  /** Where the nonces of taken submissions survive a restart; without one, they live in memory only. */
  replayStore?: ReplayStore;
  limiter?: PeerRateLimiter;
  onError?: (peer: string, error: Error) => void;
}

/** The running task protocol handler. */
export interface TaskServer {
  stop(): Promise<void>;
}

interface PeerState {
  channels: Set<FramedChannel<TaskMessage>>;
  /** Tasks this peer submitted that have not been reported terminal in a lease yet. */
  leased: Set<string>;
}

function errorMessage(rid: number, err: unknown): TaskMessage {
  return { t: "err", rid, ...errorToWire(err) };
}

/** Rough wire size of events kept in one message, far below the frame limit: an output event alone may hold 64 KiB of text. */
const EVENT_BYTES_PER_MESSAGE = 256 * 1024;

/** An event's wire size, over-estimated: UTF-8 takes at most three bytes per UTF-16 unit; data is rare (a completion's result). */
function eventSize(e: TaskEvent): number {
  return 64 + 3 * (e.message?.length ?? 0) + (e.data === undefined ? 0 : 3 * JSON.stringify(e.data).length);
}

/**
 * Serve the task protocol: members submit (signed requests, re-checked here, never
 * on the submitter's word), cancel, query and subscribe to tasks this node
 * executes; each submitter receives lease renewals for its tasks so it can tell a
 * dead executor from a slow one.
 */
export async function startTaskServer(options: TaskServerOptions): Promise<TaskServer> {
  const { engine } = options;
  const codec = createTaskCodec();
  const peers = new Map<string, PeerState>();
  const replays = createReplayGuard({ maxClockSkewMs: options.maxClockSkewMs ?? 5 * 60_000, memoryMs: options.replayMemoryMs ?? 60_000 });
  const replayStore = options.replayStore;
  const forget = (forgotten: Parameters<ReplayStore["forget"]>[0]): void => {
    if (forgotten.length > 0) replayStore?.forget(forgotten).catch((err: unknown) => options.onError?.("(replay store)", err as Error));
  };
  if (replayStore !== undefined) {
    for (const e of await replayStore.load()) replays.restore(e.peer, e.issuedAt, e.nonce);
    forget(replays.prune());
  }

  const peerState = (peer: string): PeerState => {
    let p = peers.get(peer);
    if (!p) {
      p = { channels: new Set(), leased: new Set() };
      peers.set(peer, p);
    }
    return p;
  };

  /** A submission's envelope, parsed, and refused when it names another requester than the connection's peer. */
  const readEnvelope = (peer: string, envelopeBytes: Uint8Array): SubmitEnvelope => {
    const envelope = parseInput(submitEnvelopeSchema, decodeStrict(envelopeBytes));
    if (envelope.requester !== peer) throw new CoderClawError("PERMISSION_DENIED", `submission signed for ${envelope.requester} arrived from ${peer}`);
    return envelope;
  };

  /** Whether `peer`'s device key signed these envelopes, as one `submit` message carries them: one check for all. */
  const signedByPeer = (peer: string, envelopes: readonly Uint8Array[], sig: Uint8Array): boolean => {
    const publicKey = publicKeyOfDeviceId(peer);
    return publicKey !== undefined && ed25519.verify(sig, submitSignedBytes(envelopes), publicKey);
  };

  /** The checks of a signed envelope against this mesh, the clock and replays, then the security check. */
  const admit = async (peer: string, envelope: SubmitEnvelope): Promise<{ recorded?: Promise<void> }> => {
    if (envelope.meshId !== options.meshId()) throw new CoderClawError("PERMISSION_DENIED", `submission is for mesh ${envelope.meshId}, not this one`);
    replays.admit(peer, envelope.issuedAt, envelope.nonce);
    // Queued before the task reaches the engine, so it is durable no later than the task (see createLevelReplayStore).
    const remembered = replayStore?.remember({ peer, issuedAt: envelope.issuedAt, nonce: envelope.nonce });
    const decision: SubmitDecision = (await options.authorize?.({ peer, envelope })) ?? { allowed: true };
    if (!decision.allowed) {
      // A refused submission's nonce is kept too, but failing to keep it changes nothing about the refusal.
      await remembered?.catch(() => undefined);
      throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? "not allowed");
    }
    const recorded = remembered === undefined ? decision.recorded : decision.recorded === undefined ? remembered : Promise.all([decision.recorded, remembered]).then(() => undefined);
    return recorded === undefined ? {} : { recorded };
  };

  const serve = (channel: FramedChannel<TaskMessage>): void => {
    const peer = channel.peer;
    const state = peerState(peer);
    state.channels.add(channel);
    const subscriptions = new Map<number, AbortController>();
    const send = (m: TaskMessage): void => {
      channel.send(m).catch(() => undefined);
    };
    const answer = (rid: number, run: () => Promise<TaskMessage>): void => {
      run().then(send, (err: unknown) => send(errorMessage(rid, err)));
    };
    const submit = async (envelope: SubmitEnvelope): Promise<TaskState> => {
      const { recorded } = await admit(peer, envelope);
      const request: TaskSubmitRequest = { ...envelope.request };
      const agent = request.agentId === undefined ? undefined : options.agents.get(request.agentId);
      // The submitter re-routes on a dead executor only when the agent said a retry is safe.
      request.metadata = { ...(request.metadata ?? {}), requester: peer, retryable: agent?.retryable ?? false };
      // The task is stored while its audit entry is written; it starts once both are durable.
      const task = await engine.submit(request, { submittedBy: peer, ...(recorded !== undefined && { admitted: recorded }) });
      state.leased.add(task.id);
      return task;
    };
    /** Each submission of a message is answered on its own rid; one signature check covers them all. */
    const submitAll = (m: Extract<TaskMessage, { t: "submit" }>): void => {
      // Each submission beyond the first spends a frame of the peer's allowance, as if it had come alone.
      for (let i = 1; i < m.items.length; i++) {
        if (options.limiter?.take(peer) === false) return channel.abort(new PeerLimitError(`${peer} exceeded its frame rate`, peer));
      }
      const envelopes = m.items.map((item): { envelope: SubmitEnvelope } | { error: unknown } => {
        try {
          return { envelope: readEnvelope(peer, item.envelope) };
        } catch (error) {
          return { error };
        }
      });
      const signed = signedByPeer(peer, m.items.map((item) => item.envelope), m.sig);
      for (const [i, item] of m.items.entries()) {
        const read = envelopes[i]!;
        const accepted =
          "error" in read
            ? Promise.reject(read.error)
            : signed
              ? submit(read.envelope)
              : Promise.reject(new CoderClawError("PERMISSION_DENIED", "submission signature does not verify"));
        if (item.follow !== true) {
          answer(item.rid, async () => ({ t: "state", rid: item.rid, state: stateToWire(await accepted) }));
          continue;
        }
        const controller = new AbortController();
        subscriptions.set(item.rid, controller);
        accepted
          .then((task) => follow(item.rid, task.id, 0, controller, task))
          .catch((err: unknown) => send(errorMessage(item.rid, err)))
          .finally(() => subscriptions.delete(item.rid));
      }
    };
    /**
     * Stream a task's events after `after` on `rid`, batched, then `end`. When
     * `accepted` is given, the first batch goes out as the answer to the submit
     * that created the task, flagged when it already ends the task.
     */
    const follow = async (rid: number, taskId: string, after: number, controller: AbortController, accepted?: TaskState): Promise<void> => {
      let ended = false;
      try {
        for await (const batch of coalesce(engine.streamEvents(taskId, { afterSeq: after, signal: controller.signal }), MAX_EVENTS_PER_MESSAGE, isTerminalEvent)) {
          for (const run of runsBySize(batch, eventSize, EVENT_BYTES_PER_MESSAGE)) {
            const events = run.map(eventToWire);
            if (accepted === undefined) {
              await channel.send({ t: "upd", rid, taskId, events });
              continue;
            }
            ended = isTerminalEvent(run.at(-1)!);
            await channel.send({ t: "accepted", rid, state: stateToWire(accepted), events, end: ended });
            accepted = undefined;
          }
          // The submitter has the task's end from this stream: leases need not tell it again, nor read the task back.
          if (isTerminalEvent(batch.at(-1)!)) state.leased.delete(taskId);
        }
        if (!ended && !controller.signal.aborted) send({ t: "end", rid });
      } catch (err) {
        send(errorMessage(rid, err));
      }
    };
    void (async () => {
      try {
        for await (const m of channel) {
          switch (m.t) {
            case "submit":
              submitAll(m);
              break;
            case "cancel":
              answer(m.rid, async () => {
                const decision = (await options.authorizeCancel?.(peer, m.taskId)) ?? { allowed: true };
                if (!decision.allowed) throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? "not allowed to cancel");
                return { t: "bool", rid: m.rid, value: await engine.cancel(m.taskId) };
              });
              break;
            case "get":
              answer(m.rid, async () => {
                const s = await engine.getTask(m.taskId);
                return { t: "state", rid: m.rid, state: s ? stateToWire(s) : null };
              });
              break;
            case "events":
              answer(m.rid, async () => ({ t: "history", rid: m.rid, events: (await engine.getTaskEvents(m.taskId)).map(eventToWire) }));
              break;
            case "sub": {
              const controller = new AbortController();
              subscriptions.set(m.rid, controller);
              void follow(m.rid, m.taskId, m.after, controller).finally(() => subscriptions.delete(m.rid));
              break;
            }
            case "unsub":
              subscriptions.get(m.rid)?.abort();
              break;
            default:
              // Answers and leases only flow the other way; a peer sending them is confused, not fatal.
              send({ t: "err", rid: "rid" in m ? m.rid : 1, code: "PROTOCOL", message: `unexpected message ${m.t}` });
          }
        }
      } catch (err) {
        options.onError?.(peer, err as Error);
      } finally {
        for (const c of subscriptions.values()) c.abort();
        state.channels.delete(channel);
      }
    })();
  };

  await handleFramed(options.libp2p, TASK_PROTOCOL, {
    codec,
    settings: options.limiter ? { limiter: options.limiter } : {},
    accept: options.isMember,
    onChannel: serve,
    ...(options.onError && { onError: options.onError }),
  });

  const leaseTimer = setInterval(() => {
    void (async () => {
      for (const [, state] of peers) {
        if (state.leased.size === 0 || state.channels.size === 0) continue;
        const tasks: Array<{ id: string; status: NonNullable<Awaited<ReturnType<TaskEngine["getTask"]>>>["status"] }> = [];
        for (const id of state.leased) {
          const s = await engine.getTask(id).catch(() => null);
          if (!s) continue;
          tasks.push({ id, status: s.status });
          if (isTerminal(s.status)) state.leased.delete(id);
        }
        const channel = state.channels.values().next().value;
        channel?.send({ t: "lease", tasks }).catch(() => undefined);
      }
      forget(replays.prune());
    })();
  }, options.leaseIntervalMs ?? 1000);
  leaseTimer.unref();

  return {
    stop: async () => {
      clearInterval(leaseTimer);
      await options.libp2p.unhandle(TASK_PROTOCOL);
      for (const p of peers.values()) for (const c of p.channels) await c.close().catch(() => undefined);
    },
  };
}
