import { ed25519, publicKeyOfDeviceId } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import type { TaskEvent, TaskState, TaskStatus, TaskSubmitRequest } from "../../src/contract/types.js";
import { isTerminalEvent } from "../../src/engine/state-machine.js";
import { FENCE_AFTER_MS } from "../../src/engine/task-recovery.js";
import { errorToWire } from "../../src/transport/error-wire.js";
import { coalesce } from "../../src/util/coalesce.js";
import { runsBySize } from "../../src/util/runs-by-size.js";
import { decodeStrict } from "../framing/codec.js";
import { PeerLimitError } from "../framing/errors.js";
import type { MessageChannel } from "../framing/message-channel.js";
import { LEASE_INTERVAL_MS, LeaseRenewals } from "./lease.js";
import { MAX_EVENTS_PER_MESSAGE, submitEnvelopeSchema, type SubmitEnvelope, type TaskMessage } from "./messages.js";
import { submitSignedBytes } from "./submit-signature.js";
import { StreamedOutput } from "./streamed-output.js";
import { eventToWire, stateToWire } from "./wire.js";

/** How long the answer to a followed submit waits for the task's outcome before it goes with what there is. */
const ACCEPTED_LINGER_MS = 5;

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

/** What the executor side needs of the task engine. */
export interface TaskEngineLike {
  submit(request: TaskSubmitRequest, options: { submittedBy: string; admitted?: Promise<unknown> }): Promise<TaskState>;
  /** The task `submittedBy` submitted under idempotency key `key`, once stored. */
  findByKey(submittedBy: string, key: string): Promise<TaskState | null>;
  /** Consult `guard` before the task is recorded completed; a reason fails it instead. */
  guardOutcome(taskId: string, guard: () => string | undefined): void;
  /** Stop a task that must not finish here, failing it with `reason`. */
  supersede(taskId: string, reason: string): Promise<boolean>;
  /** Slots free for new work now, and the concurrency limit. */
  freeSlots(): number;
  readonly slots: number;
  getTask(taskId: string): Promise<TaskState | null>;
  getTaskEvents(taskId: string): Promise<TaskEvent[]>;
  streamEvents(taskId: string, options: { afterSeq: number; signal: AbortSignal }): AsyncIterable<TaskEvent>;
  cancel(taskId: string): Promise<boolean>;
}

/** The replay check of signed submissions (see the node's replay guard and store). */
export interface SubmissionReplays {
  /**
   * Take a submission, or throw PERMISSION_DENIED when it is a replay or signed
   * too far from now. The promise, when one is returned, settles once the
   * submission is remembered durably.
   */
  admit(peer: string, issuedAt: number, nonce: Uint8Array): Promise<void> | undefined;
  /** Forget what can no longer be accepted again anyway; called on each lease round. */
  prune(): void;
}

/** Options of {@link createTaskExecutor}. */
export interface TaskExecutorOptions {
  engine: TaskEngineLike;
  /** To tell submitters whether a task may be re-routed if this node dies. */
  agents: { get(agentId: string): { readonly retryable: boolean } | undefined };
  /** This node's mesh; submissions for another mesh are refused. */
  meshId: () => string | undefined;
  replays: SubmissionReplays;
  /** The security re-check of each submission; default: members may submit. */
  authorize?: AuthorizeSubmit;
  /** The security check of a remote cancel; default: members may cancel. */
  authorizeCancel?: (peer: string, taskId: string) => Promise<{ allowed: boolean; reason?: string }>;
  /** Lease renewals sent to each submitter at this interval, ms. Default {@link LEASE_INTERVAL_MS}. */
  leaseIntervalMs?: number;
  /** Each submission beyond the first of a message spends one of the peer's frames here, as if it had come alone. */
  limiter?: { take(peer: string): boolean };
  /** Told of each output text streamed to `peer`, before it is sent. */
  onStreamed?: (peer: string, text: string) => void;
  onError?: (peer: string, error: Error) => void;
}

/** The executor side of the task protocol, serving each submitter's channel. */
export interface TaskExecutor {
  /** Serve one submitter's channel until it ends. */
  serve(channel: MessageChannel<TaskMessage>): Promise<void>;
  /** Stop renewing leases and close every channel served. */
  stop(): Promise<void>;
}

/**
 * The final state of a followed task, for the message that ends its stream:
 * without its output when that is exactly what the stream's events carried.
 */
function finalOf(state: TaskState, streamed: StreamedOutput | undefined): { final: ReturnType<typeof stateToWire>; streamed?: true } {
  if (state.output !== undefined && state.output === streamed?.text()) return { final: stateToWire({ ...state, output: undefined }), streamed: true };
  return { final: stateToWire(state) };
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

/** A submission's envelope, parsed, and refused when it names another requester than the channel's peer. */
function readEnvelope(peer: string, envelopeBytes: Uint8Array): SubmitEnvelope {
  const envelope = parseInput(submitEnvelopeSchema, decodeStrict(envelopeBytes));
  if (envelope.requester !== peer) throw new CoderClawError("PERMISSION_DENIED", `submission signed for ${envelope.requester} arrived from ${peer}`);
  return envelope;
}

/** Whether `peer`'s device key signed these envelopes, as one `submit` message carries them: one check for all. */
function signedByPeer(peer: string, envelopes: readonly Uint8Array[], sig: Uint8Array): boolean {
  const publicKey = publicKeyOfDeviceId(peer);
  return publicKey !== undefined && ed25519.verify(sig, submitSignedBytes(envelopes), publicKey);
}

/**
 * The executor side of the task protocol: members submit (signed requests,
 * re-checked here, never on the submitter's word), cancel, query and subscribe
 * to tasks this node executes; each submitter receives lease renewals for its
 * tasks so it can tell a dead executor from a slow one.
 */
export function createTaskExecutor(options: TaskExecutorOptions): TaskExecutor {
  const { engine, replays } = options;
  const channels = new Map<string, Set<MessageChannel<TaskMessage>>>();
  /** Keyed submissions being taken now, by requester and key: a repeat waits for the first rather than race it. */
  const taking = new Map<string, Promise<TaskState>>();
  /** Slots promised to keyed submissions not yet queued by the engine. */
  let promised = 0;
  const leases = new LeaseRenewals({
    statusOf: async (taskId): Promise<TaskStatus | undefined> => (await engine.getTask(taskId))?.status,
    sendTo: (peer) => {
      const channel = channels.get(peer)?.values().next().value;
      return channel === undefined ? undefined : (m) => void channel.send(m).catch(() => undefined);
    },
    onPastFence: (taskId, reason) => void engine.supersede(taskId, reason).catch((err: unknown) => options.onError?.("(fence)", err as Error)),
  });

  /** The checks of a signed envelope against this mesh, the clock and replays, then the security check. */
  const admit = async (peer: string, envelope: SubmitEnvelope): Promise<{ recorded?: Promise<void> }> => {
    if (envelope.meshId !== options.meshId()) throw new CoderClawError("PERMISSION_DENIED", `submission is for mesh ${envelope.meshId}, not this one`);
    // Queued before the task reaches the engine, so it is durable no later than the task.
    const remembered = replays.admit(peer, envelope.issuedAt, envelope.nonce);
    const decision: SubmitDecision = (await options.authorize?.({ peer, envelope })) ?? { allowed: true };
    if (!decision.allowed) {
      // A refused submission's nonce is kept too, but failing to keep it changes nothing about the refusal.
      await remembered?.catch(() => undefined);
      throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? "not allowed");
    }
    const recorded = remembered === undefined ? decision.recorded : decision.recorded === undefined ? remembered : Promise.all([decision.recorded, remembered]).then(() => undefined);
    if (recorded === undefined) return {};
    // The engine reports a failed write to whoever submitted; a submission it refuses before it waits for the write (an
    // unknown agent, a node shutting down) must not leave that failure unhandled, which would end the process.
    recorded.catch(() => undefined);
    return { recorded };
  };

  const serve = async (channel: MessageChannel<TaskMessage>): Promise<void> => {
    const peer = channel.peer;
    let open = channels.get(peer);
    if (open === undefined) {
      open = new Set();
      channels.set(peer, open);
    }
    open.add(channel);
    const subscriptions = new Map<number, AbortController>();
    const send = (m: TaskMessage): void => {
      channel.send(m).catch(() => undefined);
    };
    const answer = (rid: number, run: () => Promise<TaskMessage>): void => {
      run().then(send, (err: unknown) => send(errorMessage(rid, err)));
    };
    const create = async (envelope: SubmitEnvelope): Promise<TaskState> => {
      const { recorded } = await admit(peer, envelope);
      const request: TaskSubmitRequest = { ...envelope.request };
      const agent = request.agentId === undefined ? undefined : options.agents.get(request.agentId);
      // The submitter re-routes on a dead executor only when the agent said a retry is safe.
      const retryable = agent?.retryable ?? false;
      const metadata: Record<string, unknown> = { ...(request.metadata ?? {}), requester: peer, retryable, ...(envelope.key !== undefined && { idempotencyKey: envelope.key }) };
      // Kept with the task so that recovery after a restart, which has lost the fence, does not run it again.
      if (retryable && envelope.fenceAfterMs !== undefined) metadata[FENCE_AFTER_MS] = envelope.fenceAfterMs;
      else delete metadata[FENCE_AFTER_MS];
      request.metadata = metadata;
      if (envelope.key === undefined) return engine.submit(request, { submittedBy: peer, ...(recorded !== undefined && { admitted: recorded }) });
      // Taken before the task is stored (the engine counts it only once queued): a burst must not all see one slot free.
      if (engine.freeSlots() - promised <= 0) throw new CoderClawError("BUSY", `no free slot: ${engine.slots} of ${engine.slots} in use`);
      promised++;
      try {
        // The task is stored while its audit entry is written; it starts once both are durable.
        return await engine.submit(request, { submittedBy: peer, ...(recorded !== undefined && { admitted: recorded }) });
      } finally {
        promised--;
      }
    };
    /**
     * A retryable task whose submitter asked for a fence stops once the
     * submitter stops acknowledging renewals, and never completes past that
     * point: the submitter may re-place it then. Work that is not retryable is
     * never re-placed, so it runs on whatever happens to the link.
     */
    const fenceIfAsked = (envelope: SubmitEnvelope, task: TaskState): void => {
      if (envelope.fenceAfterMs === undefined || task.metadata?.retryable !== true) return;
      leases.fence(peer, task.id, envelope.fenceAfterMs, Math.min(Date.now(), envelope.issuedAt));
      engine.guardOutcome(task.id, () => leases.fenced(task.id));
    };
    /** A keyed submission seen before gets the task it made; any other is taken anew. */
    const submit = async (envelope: SubmitEnvelope): Promise<TaskState> => {
      const key = envelope.key;
      let task: TaskState;
      if (key === undefined) {
        task = await create(envelope);
        fenceIfAsked(envelope, task);
      } else {
        const id = `${peer}\n${key}`;
        let pending = taking.get(id);
        if (pending === undefined) {
          // Registered before the first await: a repeat in another message arriving during the lookup must wait for it, not race it.
          const took = (async (): Promise<TaskState> => {
            const known = await engine.findByKey(peer, key);
            if (known !== null) return known;
            const made = await create(envelope);
            fenceIfAsked(envelope, made);
            return made;
          })();
          pending = took;
          taking.set(id, took);
          void took.finally(() => {
            if (taking.get(id) === took) taking.delete(id);
          }).catch(() => undefined);
        }
        task = await pending;
      }
      leases.hold(peer, task.id);
      return task;
    };
    /** Each submission of a message is answered on its own rid; one signature check covers them all. */
    const submitAll = (m: Extract<TaskMessage, { t: "submit" }>): void => {
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
      // Sent from the first event, this request carries the task's whole output as it streams.
      const streamed = after === 0 ? new StreamedOutput() : undefined;
      try {
        // The answer to a submit waits a few ms for the outcome (told once durable), so a quick task still travels back in one message.
        const history = engine.streamEvents(taskId, { afterSeq: after, signal: controller.signal });
        for await (const batch of coalesce(history, MAX_EVENTS_PER_MESSAGE, isTerminalEvent, accepted === undefined ? undefined : ACCEPTED_LINGER_MS)) {
          for (const run of runsBySize(batch, eventSize, EVENT_BYTES_PER_MESSAGE)) {
            const events = run.map(eventToWire);
            streamed?.add(events);
            if (options.onStreamed !== undefined) for (const e of events) if (e.type === "output_added" && e.message !== undefined) options.onStreamed(peer, e.message);
            // The outcome's message carries the final state: its follower need not ask for the output.
            const last = isTerminalEvent(run.at(-1)!) ? await engine.getTask(taskId) : null;
            const final = last === null ? {} : finalOf(last, streamed);
            if (accepted === undefined) {
              await channel.send({ t: "upd", rid, taskId, events, ...final });
              continue;
            }
            ended = last !== null;
            await channel.send({ t: "accepted", rid, state: stateToWire(accepted), events, end: ended, ...final });
            accepted = undefined;
          }
          if (isTerminalEvent(batch.at(-1)!)) leases.release(peer, taskId);
        }
        if (!ended && !controller.signal.aborted) send({ t: "end", rid });
      } catch (err) {
        send(errorMessage(rid, err));
      }
    };
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
          case "leased":
            leases.acknowledge(peer, m.round);
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
      open.delete(channel);
    }
  };

  const leaseTimer = setInterval(() => {
    void leases.renew().then(() => replays.prune());
  }, options.leaseIntervalMs ?? LEASE_INTERVAL_MS);
  leaseTimer.unref();

  return {
    serve,
    stop: async () => {
      clearInterval(leaseTimer);
      leases.close();
      for (const open of channels.values()) for (const c of open) await c.close().catch(() => undefined);
    },
  };
}
