import type { Libp2p } from "@libp2p/interface";
import type { AgentRegistry } from "../../src/agents/executor.js";
import type { TaskEngine } from "../../src/engine/task-engine.js";
import { handleFramed, type PeerRateLimiter } from "../../protocols/framing/index.js";
import { createTaskCodec, TASK_PROTOCOL } from "../../protocols/task/index.js";
import { createTaskExecutor, type AuthorizeSubmit, type TaskEngineLike } from "../../protocols/task/server.js";
import type { ServiceContext } from "../services/mesh-service.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";
import type { ReplayStore } from "./replay-store.js";
import { loadSubmissionReplays } from "./submission-replays.js";

export type { AuthorizeSubmit, SubmitDecision } from "../../protocols/task/server.js";

/** What the task server needs besides the node's context (see {@link taskServerService}). */
export interface TaskServerDeps {
  engine: TaskEngine;
  /** To tell submitters whether a task may be re-routed if this node dies. */
  agents: AgentRegistry;
  /** The security re-check of each submission; default: members may submit. */
  authorize?: AuthorizeSubmit;
  /** The security check of a remote cancel; default: members may cancel. */
  authorizeCancel?: (peer: string, taskId: string) => Promise<{ allowed: boolean; reason?: string }>;
  /** How an allowed remote cancel is carried out; default the engine's. The node's dispatcher cancels a task it placed where it runs first. */
  cancel?: (taskId: string) => Promise<boolean>;
  /** Lease renewals sent to each submitter at this interval, ms. Default 1,000. */
  leaseIntervalMs?: number;
  /** A submission signed more than this far from our clock is refused (replay window), ms. Default 5 min. */
  maxClockSkewMs?: number;
  /** How far behind a peer's newest submission another of its submissions may be signed, ms (see ReplayGuard). Default 60 s. */
  replayMemoryMs?: number;
  /** Where the nonces of taken submissions survive a restart; without one, they live in memory only. */
  replayStore?: ReplayStore;
  limiter?: PeerRateLimiter;
  /** Told of each output text streamed to a follower (it may come back inside that member's replicated changes). */
  onStreamed?: (peer: string, text: string) => void;
}

/** Options of {@link startTaskServer}. */
export interface TaskServerOptions extends TaskServerDeps {
  libp2p: Libp2p;
  /** This node's mesh; submissions for another mesh are refused. */
  meshId: () => string | undefined;
  /** Members (verified or above) only; others' streams are reset unread. */
  isMember: (peerId: string) => boolean | Promise<boolean>;
  onError?: (peer: string, error: Error) => void;
}

/** The running task protocol handler. */
export interface TaskServer {
  stop(): Promise<void>;
}

/**
 * Serve the task protocol on libp2p (see {@link createTaskExecutor} for what it
 * answers): members only, each peer's frames within `limiter`.
 */
export async function startTaskServer(options: TaskServerOptions): Promise<TaskServer> {
  const report = (peer: string, error: Error): void => options.onError?.(peer, error);
  const replays = await loadSubmissionReplays({
    maxClockSkewMs: options.maxClockSkewMs ?? 5 * 60_000,
    memoryMs: options.replayMemoryMs ?? 60_000,
    ...(options.replayStore !== undefined && { store: options.replayStore }),
    onError: (error) => report("(replay store)", error),
  });
  const { engine, cancel } = options;
  // The engine, but for a cancel, which goes where this node says (a placed task is cancelled where it runs first).
  const served: TaskEngineLike =
    cancel === undefined
      ? engine
      : {
          submit: (request, o) => engine.submit(request, o),
          getTask: (id) => engine.getTask(id),
          getTaskEvents: (id) => engine.getTaskEvents(id),
          streamEvents: (id, o) => engine.streamEvents(id, o),
          findByKey: (peer, key) => engine.findByKey(peer, key),
          freeSlots: () => engine.freeSlots(),
          get slots() {
            return engine.slots;
          },
          guardOutcome: (id, guard) => engine.guardOutcome(id, guard),
          supersede: (id, reason) => engine.supersede(id, reason),
          cancel,
        };
  const executor = createTaskExecutor({
    engine: served,
    agents: options.agents,
    meshId: options.meshId,
    replays,
    ...(options.authorize !== undefined && { authorize: options.authorize }),
    ...(options.authorizeCancel !== undefined && { authorizeCancel: options.authorizeCancel }),
    ...(options.leaseIntervalMs !== undefined && { leaseIntervalMs: options.leaseIntervalMs }),
    ...(options.limiter !== undefined && { limiter: options.limiter }),
    ...(options.onStreamed !== undefined && { onStreamed: options.onStreamed }),
    onError: report,
  });
  await handleFramed(options.libp2p, TASK_PROTOCOL, {
    codec: createTaskCodec(),
    settings: options.limiter ? { limiter: options.limiter } : {},
    accept: options.isMember,
    onChannel: (channel) => void executor.serve(channel),
    ...(options.onError && { onError: options.onError }),
  });
  return {
    stop: async () => {
      await options.libp2p.unhandle(TASK_PROTOCOL);
      await executor.stop();
    },
  };
}

/** The task server as a mesh service: members of the node's mesh submit to its engine. */
export function taskServerService(deps: TaskServerDeps): DefinedService<TaskServer> {
  return defineService(TASK_PROTOCOL, (context: ServiceContext) =>
    startTaskServer({ ...deps, libp2p: context.libp2p, meshId: context.meshId, isMember: context.isMember, onError: (peer, err) => context.report(err, peer) }),
  );
}
