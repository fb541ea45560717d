import { timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import { parseSubmitOptions } from "../../src/contract/submit-options.js";
import { errorToWire } from "../../src/transport/error-wire.js";
import type { TaskListFilter, TaskSubmitRequest, TransportAdapter } from "../../src/contract/types.js";
import {
  AdminParamsSchema,
  CloseStreamParamsSchema,
  HelloSchema,
  SubmitParamsSchema,
  MAX_CONTROL_LINE_BYTES,
  RequestSchema,
  StreamParamsSchema,
  TaskParamsSchema,
  type ResponseLine,
} from "./control-protocol.js";
import { TaskListQuerySchema } from "../../src/transport/http-wire.js";
import type { TaskAccess } from "../../src/security/service.js";

/** Options of {@link startControlServer}. */
export interface ControlServerOptions {
  /** Unix socket path (in the data directory, so only its owner can reach it). */
  socketPath: string;
  /** Secret every client must present first; kept in a 0600 file beside the socket. */
  token: string;
  /** The runtime the socket serves. */
  adapter: TransportAdapter;
  /** Administrative calls (mesh, devices, peers), when the runtime is a mesh node. */
  admin?: (method: string, params: unknown) => Promise<unknown>;
  /**
   * The decision on submits and cancels, for the node's owner (the token holder):
   * the same one HTTP and the mesh make. Without it, the token holder may do anything
   * (a local-only runtime, which has no roles).
   */
  authorize?: (access: TaskAccess) => Promise<{ allowed: boolean; reason?: string }>;
  /** How long a connection may take to present the token before it is closed, ms. Default {@link HELLO_TIMEOUT_MS}. */
  helloTimeoutMs?: number;
}

/** Default of {@link ControlServerOptions.helloTimeoutMs}: a CLI says hello at once; a connection that never does held a socket for ever. */
export const HELLO_TIMEOUT_MS = 5000;

/** A running control server. */
export interface ControlServer {
  close(): Promise<void>;
}

/** The agent a raw submit request names, when it names one as a string; the engine refuses any other shape. */
function agentIdOf(request: unknown): string | undefined {
  const agentId = typeof request === "object" && request !== null ? (request as { agentId?: unknown }).agentId : undefined;
  return typeof agentId === "string" ? agentId : undefined;
}

function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Serve the runtime contract to local CLI processes over a Unix socket, one JSON
 * object per line. A connection must first present the token; anything malformed
 * gets an error line naming the problem, and a connection that sends a line over
 * the limit is closed.
 */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { adapter } = options;
  if (existsSync(options.socketPath)) unlinkSync(options.socketPath); // stale socket of a node that died
  const sockets = new Set<Socket>();
  const permit = async (access: TaskAccess): Promise<void> => {
    const decision = (await options.authorize?.(access)) ?? { allowed: true };
    if (!decision.allowed) throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? `${access.action} denied`);
  };

  const serve = (socket: Socket): void => {
    sockets.add(socket);
    const streams = new Map<number, AbortController>();
    let authed = false;
    let refused = false;
    let buffered = 0;
    const greeting = setTimeout(() => socket.destroy(), options.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
    greeting.unref();
    // A socket ended by us, or closed by the client, may still have lines queued in readline
    // or replies in flight: writing after end throws an error that would stop the node.
    const send = (line: ResponseLine | { type: "hello"; ok: boolean; error?: string }): void => {
      if (socket.writable) socket.write(JSON.stringify(line) + "\n");
    };
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.length;
      if (buffered > MAX_CONTROL_LINE_BYTES) socket.destroy();
    });
    const lines = createInterface({ input: socket, crlfDelay: Infinity });
    // readline re-emits the socket's errors; a client that resets must not stop the node.
    lines.on("error", () => undefined);
    lines.on("line", (line) => {
      if (refused) return;
      buffered = 0;
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        send({ id: 0, error: { code: "PROTOCOL", message: "line is not valid JSON" } });
        return;
      }
      if (!authed) {
        const hello = HelloSchema.safeParse(json);
        if (!hello.success || !tokensEqual(hello.data.token, options.token)) {
          send({ type: "hello", ok: false, error: "bad control token" });
          refused = true;
          lines.close();
          socket.end();
          return;
        }
        authed = true;
        clearTimeout(greeting);
        send({ type: "hello", ok: true });
        return;
      }
      const req = RequestSchema.safeParse(json);
      if (!req.success) {
        send({ id: 0, error: { code: "PROTOCOL", message: `bad request: ${req.error.issues[0]?.message ?? "invalid"}` } });
        return;
      }
      const { id, method } = req.data;
      const raw = req.data.params;
      const reply = (run: () => unknown): void => {
        Promise.resolve().then(run).then(
          (result) => send({ id, result: result ?? null }),
          (err: unknown) => send({ id, error: errorToWire(err) }),
        );
      };
      switch (method) {
        case "submitTask":
          return reply(async () => {
            const { request, route, options: rest } = parseInput(SubmitParamsSchema, raw);
            const options = parseSubmitOptions({ ...rest, ...(route !== undefined && { route }) });
            const agentId = agentIdOf(request);
            await permit({ action: "task.submit", ...(agentId !== undefined && { agentId }) });
            // The engine validates the request itself, and the adapter the route, with the same errors for every transport.
            return adapter.submitTask(request as TaskSubmitRequest, options);
          });
        case "admin":
          return reply(() => {
            const { method: m, params: p } = parseInput(AdminParamsSchema, raw);
            if (!options.admin) throw new CoderClawError("UNAVAILABLE", "this node runs no mesh administration");
            return options.admin(m, p);
          });
        case "retryTask":
          return reply(async () => {
            const { taskId } = parseInput(TaskParamsSchema, raw);
            if (!adapter.retryTask) throw new CoderClawError("UNAVAILABLE", "this runtime cannot retry tasks");
            // A retry submits the same work again: it needs what submitting it needs, its agent's skills included.
            const agentId = (await adapter.getTaskState(taskId))?.agentId;
            await permit({ action: "task.submit", ...(agentId !== undefined && { agentId }) });
            return adapter.retryTask(taskId);
          });
        case "getTaskState":
          return reply(() => adapter.getTaskState(parseInput(TaskParamsSchema, raw).taskId));
        case "getTaskEvents":
          return reply(() => adapter.getTaskEvents?.(parseInput(TaskParamsSchema, raw).taskId) ?? []);
        case "cancelTask":
          return reply(async () => {
            const { taskId } = parseInput(TaskParamsSchema, raw);
            await permit({ action: "task.cancel", taskId });
            return adapter.cancelTask(taskId);
          });
        case "listTasks":
          return reply(() => adapter.listTasks(parseInput<TaskListFilter>(TaskListQuerySchema, raw ?? {})));
        case "listAgents":
          return reply(() => adapter.listAgents());
        case "listSkills":
          return reply(() => adapter.listSkills());
        case "getStatus":
          return reply(() => adapter.getStatus());
        case "closeStream":
          return reply(() => {
            streams.get(parseInput(CloseStreamParamsSchema, raw).streamId)?.abort();
            return true;
          });
        case "streamTaskUpdates": {
          let parsed: { taskId: string; afterSeq?: number | undefined };
          try {
            parsed = parseInput(StreamParamsSchema, raw);
          } catch (err) {
            return reply(() => Promise.reject(err));
          }
          const controller = new AbortController();
          streams.set(id, controller);
          void (async () => {
            try {
              const opts = parsed.afterSeq === undefined ? { signal: controller.signal } : { signal: controller.signal, afterSeq: parsed.afterSeq };
              for await (const event of adapter.streamTaskUpdates(parsed.taskId, opts)) send({ id, event });
              send({ id, end: true });
            } catch (err) {
              send({ id, error: errorToWire(err) });
            } finally {
              streams.delete(id);
            }
          })();
          return;
        }
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(greeting);
      sockets.delete(socket);
      for (const c of streams.values()) c.abort();
    });
  };

  const server: Server = createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => resolve());
  });
  chmodSync(options.socketPath, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
