import { connect } from "node:net";
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
import { ChannelClosedError } from "../../protocols/framing/errors.js";
import { RequestChannel, type RequestShape } from "../../protocols/framing/request-channel.js";
import { MAX_CONTROL_LINE_BYTES } from "./control-protocol.js";
import { jsonLineChannel } from "./line-channel.js";

/** A line from the node: the answer to the hello, or a result, streamed event, stream end or error of a request. */
const AnswerLineSchema = z.object({
  id: z.number().int().optional(),
  type: z.literal("hello").optional(),
  ok: z.boolean().optional(),
  result: z.unknown().optional(),
  event: z.unknown().optional(),
  end: z.literal(true).optional(),
  error: z.union([z.string(), z.object({ code: z.string(), message: z.string(), field: z.string().optional() })]).optional(),
});

/** Every line either side sends. */
type ControlLine = z.infer<typeof AnswerLineSchema> | { type: "hello"; token: string } | { id: number; method: string; params?: unknown };
type Answer = z.infer<typeof AnswerLineSchema>;

/** The hello is request 0; requests count from 1. */
const HELLO = 0;

/** How the control socket's lines pair answers with requests (see control-protocol.ts). */
const controlShape: RequestShape<ControlLine> = {
  answerTo: (line) => ("type" in line && line.type === "hello" ? HELLO : "id" in line && !("method" in line) ? line.id : undefined),
  failure: (line) => {
    const answer = line as Answer;
    if (answer.type === "hello") return answer.ok === true ? undefined : new CoderClawError("UNAUTHENTICATED", typeof answer.error === "string" ? answer.error : "control token refused");
    if (answer.error === undefined) return undefined;
    return typeof answer.error === "string" ? new CoderClawError("PROTOCOL", answer.error) : errorFromWire(answer.error);
  },
  ends: (line) => (line as Answer).end === true,
  // Its own answer is not waited for: it carries the stream's id, which no exchange holds any more.
  cancel: (rid) => ({ id: HELLO, method: "closeStream", params: { streamId: rid } }),
};

/** The channel's end in the words of a CLI user. */
function explained(error: unknown): unknown {
  if (!(error instanceof ChannelClosedError)) return error;
  const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === undefined
    ? new CoderClawError("UNAVAILABLE", "control connection closed by the node")
    : new CoderClawError("UNAVAILABLE", `control connection lost (${code}): the node stopped or is unreachable`);
}

/**
 * The runtime contract over a running node's control socket: what the CLI uses
 * when `coderclaw start` is running on this data directory. One JSON object per
 * line, on the one request channel every protocol uses.
 */
export class ControlClientAdapter implements TransportAdapter {
  private closed = false;

  private constructor(private readonly requests: RequestChannel<ControlLine>) {}

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
    const channel = jsonLineChannel<ControlLine>({ socket, peer: "the node", parse: (json) => AnswerLineSchema.parse(json), maxLineBytes: MAX_CONTROL_LINE_BYTES });
    // A call may wait as long as the node works on it (a routed submit looks the mesh up first).
    const requests = new RequestChannel(channel, controlShape, { firstRid: HELLO, timeoutMs: Infinity });
    await requests.request(() => ({ type: "hello", token }), { timeoutMs }).catch((error: unknown) => {
      socket.destroy();
      throw error instanceof CoderClawError && error.code === "TIMEOUT" ? new CoderClawError("UNAVAILABLE", "control socket did not greet") : explained(error);
    });
    return new ControlClientAdapter(requests);
  }

  private async call(method: string, params?: unknown): Promise<unknown> {
    if (this.closed) throw new CoderClawError("UNAVAILABLE", "control client is closed");
    try {
      const answer = (await this.requests.request((id) => (params === undefined ? { id, method } : { id, method, params }))) as Answer;
      return answer.result;
    } catch (error) {
      throw explained(error);
    }
  }

  /** The node's runtime honours or refuses `options` (a mesh node takes a peer id as route, and places by priority and requirements). */
  async submitTask(request: TaskSubmitRequest, options: SubmitOptions = {}): Promise<TaskState> {
    const { route, deadline, ...rest } = options;
    const more = { ...rest, ...(deadline !== undefined && { deadline: deadline.getTime() }) };
    const params = { request, ...(route !== undefined && { route }), ...(Object.keys(more).length > 0 && { options: more }) };
    return TaskStateSchema.parse(await this.call("submitTask", params));
  }

  /** Submit an ended task again (see `TransportAdapter.retryTask`). */
  async retryTask(taskId: string): Promise<TaskState> {
    return TaskStateSchema.parse(await this.call("retryTask", { taskId }));
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
    if (this.closed) throw new CoderClawError("UNAVAILABLE", "control client is closed");
    const params = options.afterSeq === undefined ? { taskId } : { taskId, afterSeq: options.afterSeq };
    const exchange = this.requests.open((id) => this.requests.channel.send({ id, method: "streamTaskUpdates", params }), {
      stream: true,
      ...(options.signal && { signal: options.signal }),
    });
    try {
      for (;;) {
        let line: Answer | undefined;
        try {
          line = (await exchange.next());
        } catch (error) {
          throw explained(error);
        }
        if (line === undefined) return;
        if (line.event !== undefined) yield TaskUpdateEventSchema.parse(line.event);
      }
    } finally {
      exchange.close();
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
    await this.requests.close();
  }
}

