import type { Libp2p } from "@libp2p/interface";
import type { DeviceIdentity } from "../../identity/index.js";
import type { TaskEvent, TaskState, TaskSubmitRequest } from "../../src/contract/types.js";
import { RequestPool } from "../../protocols/framing/index.js";
import { createTaskCodec, TASK_PROTOCOL, type TaskMessage } from "../../protocols/task/index.js";
import { TaskRequester, taskRequestShape } from "../../protocols/task/client.js";
import type { Lease } from "../../protocols/task/lease.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";

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

/**
 * The submitting side of the task protocol on libp2p: one long-lived request
 * channel per executor peer (see {@link TaskRequester} for what travels on it).
 */
export class TaskClient {
  readonly #requester: TaskRequester;
  readonly #pool: RequestPool<TaskMessage>;

  constructor(options: TaskClientOptions) {
    this.#requester = new TaskRequester({
      channelTo: (peer) => this.#pool.get(peer),
      identity: options.identity,
      meshId: options.meshId,
      ...(options.requestTimeoutMs !== undefined && { requestTimeoutMs: options.requestTimeoutMs }),
      ...(options.maxUnclaimedEvents !== undefined && { maxUnclaimedEvents: options.maxUnclaimedEvents }),
    });
    this.#pool = new RequestPool({
      libp2p: options.libp2p,
      protocol: TASK_PROTOCOL,
      codec: createTaskCodec(),
      openTimeoutMs: 5000,
      shape: taskRequestShape,
      requests: this.#requester.requestOptions,
    });
  }

  /** See {@link TaskRequester.submit}. */
  submit(peer: string, request: TaskSubmitRequest, session?: string, options: { follow?: boolean; key?: string; fenceAfterMs?: number; timeoutMs?: number } = {}): Promise<TaskState> {
    return this.#requester.submit(peer, request, session, options);
  }

  cancel(peer: string, taskId: string): Promise<boolean> {
    return this.#requester.cancel(peer, taskId);
  }

  get(peer: string, taskId: string): Promise<TaskState | null> {
    return this.#requester.get(peer, taskId);
  }

  events(peer: string, taskId: string): Promise<TaskEvent[]> {
    return this.#requester.events(peer, taskId);
  }

  /** See {@link TaskRequester.subscribe}. */
  subscribe(peer: string, taskId: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<TaskEvent> {
    return this.#requester.subscribe(peer, taskId, afterSeq, signal);
  }

  /** See {@link TaskRequester.finalState}. */
  finalState(taskId: string): TaskState | undefined {
    return this.#requester.finalState(taskId);
  }

  /** When the executor last renewed our lease on `taskId`; undefined if never, or once the task has ended. */
  leaseOf(taskId: string): Lease | undefined {
    return this.#requester.leaseOf(taskId);
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/** The task client as a mesh service: started with the node's libp2p and identity, its channels closed on stop. */
export function taskClientService(options: Pick<TaskClientOptions, "requestTimeoutMs" | "maxUnclaimedEvents"> = {}): DefinedService<TaskClient & { stop(): Promise<void> }> {
  return defineService(TASK_PROTOCOL, async (context) => {
    const client = new TaskClient({ ...options, libp2p: context.libp2p, identity: context.identity, meshId: context.meshId });
    return Object.assign(client, { stop: () => client.close() });
  });
}
