import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { z } from "zod";
import { CoderClawError } from "../../src/contract/errors.js";
import { errorFromWire } from "../../src/transport/error-wire.js";
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
} from "../../src/contract/types.js";
import {
  AgentInfoSchema,
  RuntimeStatusSchema,
  SkillInfoSchema,
  TaskEventSchema,
  TaskStateSchema,
  TaskUpdateEventSchema,
} from "../../src/transport/http-wire.js";
import { AsyncQueue } from "../../src/util/async-queue.js";
import { MAX_CONTROL_LINE_BYTES } from "./control-protocol.js";

const LineSchema = z.object({
  id: z.number().int().optional(),
  type: z.literal("hello").optional(),
  ok: z.boolean().optional(),
  result: z.unknown().optional(),
  event: z.unknown().optional(),
  end: z.literal(true).optional(),
  error: z.union([z.string(), z.object({ code: z.string(), message: z.string(), field: z.string().optional() })]).optional(),
});

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

function connectionLost(err: NodeJS.ErrnoException): CoderClawError {
  return new CoderClawError("UNAVAILABLE", `control connection lost (${err.code ?? err.message}): the node stopped or is unreachable`);
}

/**
 * The runtime contract over a running node's control socket: what the CLI uses
 * when `coderclaw start` is running on this data directory.
 */
export class ControlClientAdapter implements TransportAdapter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, AsyncQueue<{ event?: unknown; error?: CoderClawError }>>();
  private closed = false;
  /** Why the connection ended, once it has: later calls fail with it instead of waiting forever. */
  private lost: CoderClawError | undefined;

  private constructor(private readonly socket: Socket) {
    const lines = createInterface({ input: socket, crlfDelay: Infinity });
    lines.on("line", (line) => this.onLine(line));
    // readline re-emits the socket's errors (ECONNRESET when the node dies mid-request);
    // unheard, that error would end the host process instead of failing the calls.
    lines.on("error", (err: NodeJS.ErrnoException) => this.fail(connectionLost(err)));
    socket.on("error", (err: NodeJS.ErrnoException) => this.fail(connectionLost(err)));
    socket.on("close", () => this.fail(new CoderClawError("UNAVAILABLE", "control connection closed by the node")));
  }

  /** Connect and authenticate; rejects with UNAVAILABLE when no node listens there. */
  static async connect(socketPath: string, token: string, timeoutMs = 2000): Promise<ControlClientAdapter> {
    const socket = connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CoderClawError("UNAVAILABLE", `no answer on ${socketPath}`)), timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(new CoderClawError("UNAVAILABLE", `cannot connect to ${socketPath}: ${err.message}`));
      });
    });
    const client = new ControlClientAdapter(socket);
    await client.hello(token, timeoutMs);
    return client;
  }

  private hello(token: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new CoderClawError("UNAVAILABLE", "control socket did not greet")), timeoutMs);
      this.pending.set(0, {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(JSON.stringify({ type: "hello", token }) + "\n");
    });
  }

  private onLine(line: string): void {
    if (line.length > MAX_CONTROL_LINE_BYTES) return this.fail(new CoderClawError("PROTOCOL", "control line over the size limit"));
    let parsed: z.infer<typeof LineSchema>;
    try {
      parsed = LineSchema.parse(JSON.parse(line));
    } catch {
      return this.fail(new CoderClawError("PROTOCOL", "malformed line from the control socket"));
    }
    if (parsed.type === "hello") {
      const p = this.pending.get(0);
      this.pending.delete(0);
      if (parsed.ok) p?.resolve(undefined);
      else p?.reject(new CoderClawError("UNAUTHENTICATED", typeof parsed.error === "string" ? parsed.error : "control token refused"));
      return;
    }
    const id = parsed.id ?? 0;
    const stream = this.streams.get(id);
    if (stream) {
      if (parsed.event !== undefined) stream.push({ event: parsed.event });
      else {
        if (parsed.error !== undefined && typeof parsed.error !== "string") stream.push({ error: errorFromWire(parsed.error) });
        stream.end();
        this.streams.delete(id);
      }
      return;
    }
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (parsed.error !== undefined) p.reject(typeof parsed.error === "string" ? new CoderClawError("PROTOCOL", parsed.error) : errorFromWire(parsed.error));
    else p.resolve(parsed.result);
  }

  private fail(err: CoderClawError): void {
    this.lost ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const s of this.streams.values()) {
      s.push({ error: err });
      s.end();
    }
    this.streams.clear();
    this.socket.destroy();
  }

  private call(method: string, params?: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(new CoderClawError("UNAVAILABLE", "control client is closed"));
    if (this.lost) return Promise.reject(this.lost);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(JSON.stringify(params === undefined ? { id, method } : { id, method, params }) + "\n");
    });
  }

  /** The node's runtime honours or refuses `options.route` (a mesh node takes a peer id). */
  async submitTask(request: TaskSubmitRequest, options: SubmitOptions = {}): Promise<TaskState> {
    return TaskStateSchema.parse(await this.call("submitTask", options.route === undefined ? { request } : { request, route: options.route }));
  }

  /** An administrative call of the node (see node/node-admin.ts); the answer is the node's JSON. */
  admin(method: string, params?: unknown): Promise<unknown> {
    return this.call("admin", params === undefined ? { method } : { method, params });
  }

  async getTaskState(taskId: string): Promise<TaskState | null> {
    const r = await this.call("getTaskState", { taskId });
    return r === null ? null : TaskStateSchema.parse(r);
  }

  async getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    return z.array(TaskEventSchema).parse(await this.call("getTaskEvents", { taskId }));
  }

  async *streamTaskUpdates(taskId: string, options: StreamOptions = {}): AsyncIterable<TaskUpdateEvent> {
    if (this.lost) throw this.lost;
    const id = this.nextId++;
    const queue = new AsyncQueue<{ event?: unknown; error?: CoderClawError }>();
    this.streams.set(id, queue);
    const params = options.afterSeq === undefined ? { taskId } : { taskId, afterSeq: options.afterSeq };
    this.socket.write(JSON.stringify({ id, method: "streamTaskUpdates", params }) + "\n");
    const onAbort = (): void => void this.call("closeStream", { streamId: id }).catch(() => undefined);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (let r = await queue.next(); !r.done; r = await queue.next()) {
        if (r.value.error) throw r.value.error;
        yield TaskUpdateEventSchema.parse(r.value.event);
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      if (this.streams.delete(id)) void this.call("closeStream", { streamId: id }).catch(() => undefined);
    }
  }

  async cancelTask(taskId: string): Promise<boolean> {
    return z.boolean().parse(await this.call("cancelTask", { taskId }));
  }

  async listTasks(filter: TaskListFilter = {}): Promise<TaskState[]> {
    return z.array(TaskStateSchema).parse(await this.call("listTasks", filter));
  }

  async listAgents(): Promise<AgentInfo[]> {
    return z.array(AgentInfoSchema).parse(await this.call("listAgents"));
  }

  async listSkills(): Promise<SkillInfo[]> {
    return z.array(SkillInfoSchema).parse(await this.call("listSkills"));
  }

  async getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    return RuntimeStatusSchema.parse(await this.call("getStatus"));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.socket.end();
  }
}

