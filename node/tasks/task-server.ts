import type { Libp2p } from "@libp2p/interface";
import { ed25519, publicKeyOfDeviceId } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import { errorToWire } from "../../src/transport/error-wire.js";
import type { TaskSubmitRequest } from "../../src/contract/types.js";
import type { TaskEngine } from "../../src/engine/task-engine.js";
import type { AgentRegistry } from "../../src/agents/executor.js";
import { isTerminal } from "../../src/engine/state-machine.js";
import { decodeStrict, handleFramed, type FramedChannel, type PeerRateLimiter } from "../../protocols/framing/index.js";
import { createTaskCodec, eventToWire, stateToWire, submitEnvelopeSchema, TASK_PROTOCOL, type SubmitEnvelope, type TaskMessage } from "../../protocols/task/index.js";

/** What the executing node decides about a remote submission, from the signed request alone. */
export type AuthorizeSubmit = (submit: { peer: string; envelope: SubmitEnvelope }) => Promise<{ allowed: boolean; reason?: string }> | { allowed: boolean; reason?: string };

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
  const seenNonces = new Map<string, number>();
  const skew = options.maxClockSkewMs ?? 5 * 60_000;

  const peerState = (peer: string): PeerState => {
    let p = peers.get(peer);
    if (!p) {
      p = { channels: new Set(), leased: new Set() };
      peers.set(peer, p);
    }
    return p;
  };

  const verifySubmit = async (peer: string, envelopeBytes: Uint8Array, sig: Uint8Array): Promise<SubmitEnvelope> => {
    const envelope = parseInput(submitEnvelopeSchema, decodeStrict(envelopeBytes));
    if (envelope.requester !== peer) throw new CoderClawError("PERMISSION_DENIED", `submission signed for ${envelope.requester} arrived from ${peer}`);
    const publicKey = publicKeyOfDeviceId(peer);
    if (!publicKey || !ed25519.verify(sig, envelopeBytes, publicKey)) throw new CoderClawError("PERMISSION_DENIED", "submission signature does not verify");
    if (envelope.meshId !== options.meshId()) throw new CoderClawError("PERMISSION_DENIED", `submission is for mesh ${envelope.meshId}, not this one`);
    const now = Date.now();
    if (Math.abs(now - envelope.issuedAt) > skew) throw new CoderClawError("PERMISSION_DENIED", "submission timestamp outside the replay window");
    const nonce = `${peer}:${Buffer.from(envelope.nonce).toString("hex")}`;
    if (seenNonces.has(nonce)) throw new CoderClawError("PERMISSION_DENIED", "replayed submission");
    seenNonces.set(nonce, now);
    const decision = (await options.authorize?.({ peer, envelope })) ?? { allowed: true };
    if (!decision.allowed) throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? "not allowed");
    return envelope;
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
    void (async () => {
      try {
        for await (const m of channel) {
          switch (m.t) {
            case "submit":
              answer(m.rid, async () => {
                const envelope = await verifySubmit(peer, m.envelope, m.sig);
                const request: TaskSubmitRequest = { ...envelope.request } as TaskSubmitRequest;
                const agent = request.agentId === undefined ? undefined : options.agents.get(request.agentId);
                // The submitter re-routes on a dead executor only when the agent said a retry is safe.
                request.metadata = { ...(request.metadata ?? {}), requester: peer, retryable: agent?.retryable ?? false };
                const task = await engine.submit(request);
                state.leased.add(task.id);
                return { t: "state", rid: m.rid, state: stateToWire(task) };
              });
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
              void (async () => {
                try {
                  for await (const e of engine.streamEvents(m.taskId, { afterSeq: m.after, signal: controller.signal })) {
                    await channel.send({ t: "upd", rid: m.rid, taskId: m.taskId, event: eventToWire(e) });
                  }
                  if (!controller.signal.aborted) send({ t: "end", rid: m.rid });
                } catch (err) {
                  send(errorMessage(m.rid, err));
                } finally {
                  subscriptions.delete(m.rid);
                }
              })();
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
      const horizon = Date.now() - 2 * skew;
      for (const [nonce, at] of seenNonces) if (at < horizon) seenNonces.delete(nonce);
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
