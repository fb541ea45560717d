import type {
  AgentInfo,
  RuntimeStatus,
  SkillInfo,
  StreamOptions,
  SubmitOptions,
  TaskListFilter,
  TaskState,
  TaskSubmitRequest,
  TaskEvent,
  TaskUpdateEvent,
  TransportAdapter,
} from "../contract/types.js";
import { setMaxListeners } from "node:events";
import { z } from "zod";
import { readSse, type SseMessage } from "../util/sse-reader.js";
import { parseSubmitOptions } from "../contract/submit-options.js";
import { uploadSnapshot } from "./code-upload.js";
import { statCacheFile } from "../workspace/stat-cache.js";
import { CoderClawError, type ErrorCode } from "../contract/errors.js";
import {
  AgentInfoSchema,
  CancelResultSchema,
  ErrorBodySchema,
  HTTP_API_PREFIX,
  RuntimeStatusSchema,
  SkillInfoSchema,
  SSE_EVENTS,
  TaskEventSchema,
  TaskStateSchema,
  submitOptionsToQuery,
  TaskUpdateEventSchema,
  isErrorCode,
} from "./http-wire.js";

/** Configuration of {@link HTTPTransportAdapter}. */
export interface HTTPTransportConfig {
  /** The node's base URL, e.g. `https://ci-node.example:8443` (no `/v1`). */
  baseUrl: string;
  /** Bearer token, or a function returning a fresh one per request (short-lived OIDC tokens). */
  token: string | (() => string | Promise<string>);
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Per-request deadline for JSON calls, ms. Default 30 s. Streams are not bounded by it. */
  timeoutMs?: number;
  /** A stream with no bytes (not even a heartbeat) for this long is dropped and resumed, ms. Default 45 s. */
  streamIdleTimeoutMs?: number;
  /** Consecutive failed reconnects before a stream gives up. Default 8. */
  maxReconnects?: number;
  /** First reconnect delay, doubled per consecutive failure up to 5 s, ms. Default 100. */
  reconnectDelayMs?: number;
  /** Where snapshots of `SubmitOptions.repo` keep their stat caches, so that a file unchanged since is not read again; none: every file is hashed. */
  snapshotCacheDir?: string;
}

const TaskListSchema = z.object({ tasks: z.array(TaskStateSchema) });
const MissingSchema = z.object({ missing: z.array(z.string()) });
const TaskHistorySchema = z.object({ events: z.array(TaskEventSchema) });
const AgentListSchema = z.object({ agents: z.array(AgentInfoSchema) });
const SkillListSchema = z.object({ skills: z.array(SkillInfoSchema) });
const AuditEntrySchema = z.looseObject({
  author: z.string(),
  seq: z.number(),
  time: z.number(),
  body: z.looseObject({ action: z.string(), userId: z.string(), deviceId: z.string().optional(), resource: z.string().optional(), result: z.string(), reason: z.string().optional() }),
});
const AuditListSchema = z.object({ entries: z.array(AuditEntrySchema).max(10_000) });

/** Filter of {@link HTTPTransportAdapter.getAuditLog}; the server caps `limit` at 10000. */
export interface AuditLogQuery {
  userId?: string;
  action?: string;
  result?: "allowed" | "denied" | "error";
  startDate?: Date;
  endDate?: Date;
  limit?: number;
}

/** An audit entry as the HTTP API returns it (signature fields are kept but not checked here). */
export type AuditLogEntry = z.infer<typeof AuditEntrySchema>;

/** Codes for answers whose body is not ours (a proxy, a closing server). */
const CODE_BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: "INVALID_INPUT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "INVALID_TRANSITION",
  413: "INVALID_INPUT",
  415: "INVALID_INPUT",
  422: "AGENT_UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "TIMEOUT",
};

/**
 * Transport for `remote-enabled` mode: the runtime contract over a node's HTTP
 * API. Server errors come back as CoderClawError with the server's code, so
 * callers handle a remote runtime exactly like a local one.
 *
 * `streamTaskUpdates` follows the task over Server-Sent Events and, when the
 * connection drops before the task ends, reconnects with `Last-Event-ID` so every
 * update arrives exactly once and in order.
 *
 * @example
 * ```ts
 * const adapter = new HTTPTransportAdapter({ baseUrl: "http://127.0.0.1:7420", token });
 * const runtime = new CoderClawRuntime(adapter, "remote-enabled");
 * ```
 */
export class HTTPTransportAdapter implements TransportAdapter {
  /** The deployment mode this transport serves. */
  readonly mode = "remote-enabled" as const;
  readonly #base: string;
  readonly #token: () => string | Promise<string>;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #idleMs: number;
  readonly #maxReconnects: number;
  readonly #reconnectDelayMs: number;
  readonly #closed = new AbortController();
  readonly #snapshotCacheDir: string | undefined;

  constructor(config: HTTPTransportConfig) {
    let base: URL;
    try {
      base = new URL(config.baseUrl);
    } catch {
      throw new CoderClawError("CONFIG", `baseUrl is not a URL: ${config.baseUrl}`, { field: "baseUrl" });
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new CoderClawError("CONFIG", `baseUrl must be http(s): ${config.baseUrl}`, { field: "baseUrl" });
    }
    this.#base = base.href.replace(/\/+$/, "");
    const token = config.token;
    this.#token = typeof token === "function" ? token : () => token;
    this.#fetch = config.fetch ?? globalThis.fetch;
    this.#timeoutMs = config.timeoutMs ?? 30_000;
    this.#idleMs = config.streamIdleTimeoutMs ?? 45_000;
    this.#maxReconnects = config.maxReconnects ?? 8;
    this.#reconnectDelayMs = config.reconnectDelayMs ?? 100;
    this.#snapshotCacheDir = config.snapshotCacheDir;
    // Every open stream and call listens on this signal; hundreds at once are normal, not a leak.
    setMaxListeners(0, this.#closed.signal);
  }

  /** The server's runtime honours or refuses `options` (a mesh node takes a peer id as route; any node takes `auto` and `local`). */
  async submitTask(request: TaskSubmitRequest, options?: SubmitOptions): Promise<TaskState> {
    if (options?.repo === undefined) return TaskStateSchema.parse(await this.#call("POST", `/tasks${submitOptionsToQuery(options)}`, request));
    // The node must not read its own files for a remote caller: the directory is snapshotted here and its tree sent.
    const { repo, artifacts, commits, ...placement } = parseSubmitOptions(options);
    const tree = await uploadSnapshot(repo!, this.#snapshotCacheDir === undefined ? {} : { cacheFile: statCacheFile(this.#snapshotCacheDir, repo!) }, {
      missing: async (digests) => MissingSchema.parse(await this.#call("POST", "/blobs/missing", { digests })).missing,
      put: async (body) => void (await this.#call("POST", "/blobs", body)),
      putTree: async (tree, index) => void (await this.#call("PUT", `/trees/${tree}`, index)),
    });
    const code = { tree, ...(artifacts !== undefined && { artifacts }), ...(commits === true && { commits }) };
    return TaskStateSchema.parse(await this.#call("POST", `/tasks${submitOptionsToQuery(placement, code)}`, request));
  }

  /** Submit an ended task again (see `TransportAdapter.retryTask`). */
  async retryTask(taskId: string): Promise<TaskState> {
    return TaskStateSchema.parse(await this.#call("POST", `/tasks/${encodeURIComponent(taskId)}/retry`));
  }

  async getTaskState(taskId: string): Promise<TaskState | null> {
    try {
      return TaskStateSchema.parse(await this.#call("GET", `/tasks/${encodeURIComponent(taskId)}`));
    } catch (err) {
      if (err instanceof CoderClawError && err.code === "NOT_FOUND") return null;
      throw err;
    }
  }

  async cancelTask(taskId: string): Promise<boolean> {
    const body = await this.#call("POST", `/tasks/${encodeURIComponent(taskId)}/cancel`);
    return CancelResultSchema.parse(body).cancelled;
  }

  async listTasks(filter: TaskListFilter = {}): Promise<TaskState[]> {
    const query = new URLSearchParams();
    if (filter.status !== undefined) query.set("status", filter.status);
    if (filter.sessionId !== undefined) query.set("sessionId", filter.sessionId);
    if (filter.limit !== undefined) query.set("limit", String(filter.limit));
    const suffix = query.size === 0 ? "" : `?${query.toString()}`;
    return TaskListSchema.parse(await this.#call("GET", `/tasks${suffix}`)).tasks;
  }

  /** The task's full history so far, without following it. */
  async getTaskEvents(taskId: string): Promise<TaskEvent[]> {
    return TaskHistorySchema.parse(await this.#call("GET", `/tasks/${encodeURIComponent(taskId)}/history`)).events;
  }

  async listAgents(): Promise<AgentInfo[]> {
    return AgentListSchema.parse(await this.#call("GET", "/agents")).agents;
  }

  async listSkills(): Promise<SkillInfo[]> {
    return SkillListSchema.parse(await this.#call("GET", "/skills")).skills;
  }

  async getStatus(): Promise<Omit<RuntimeStatus, "mode">> {
    return RuntimeStatusSchema.parse(await this.#call("GET", "/status"));
  }

  /** Audit entries of the server's node (`GET /audit`, admins only); the newest `limit`, ordered by time. */
  async getAuditLog(query: AuditLogQuery = {}): Promise<AuditLogEntry[]> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, v instanceof Date ? v.toISOString() : String(v));
    const suffix = params.size === 0 ? "" : `?${params.toString()}`;
    return AuditListSchema.parse(await this.#call("GET", `/audit${suffix}`)).entries;
  }

  /** Aborts open streams and in-flight calls. Idempotent. */
  async close(): Promise<void> {
    this.#closed.abort();
  }

  /**
   * Yields the task's updates after `options.afterSeq` (all of them by default)
   * and returns after the terminal one. Transient failures (a dropped connection,
   * a 503 from a restarting node, a silent stream) are resumed from the last seq
   * received; errors the server states (404, 403...) are thrown.
   */
  async *streamTaskUpdates(taskId: string, options: StreamOptions = {}): AsyncGenerator<TaskUpdateEvent> {
    let lastSeq = options.afterSeq ?? 0;
    let failures = 0;
    const stop = options.signal === undefined ? this.#closed.signal : AbortSignal.any([options.signal, this.#closed.signal]);
    const url = `${this.#base}${HTTP_API_PREFIX}/tasks/${encodeURIComponent(taskId)}/events`;
    while (!stop.aborted) {
      const attempt = new AbortController();
      const attemptSignal = AbortSignal.any([stop, attempt.signal]);
      let idle: NodeJS.Timeout | undefined;
      const touch = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => attempt.abort(new CoderClawError("TIMEOUT", "event stream went silent")), this.#idleMs);
      };
      let cause: unknown;
      try {
        touch();
        const headers: Record<string, string> = {
          accept: "text/event-stream",
          authorization: `Bearer ${await this.#token()}`,
        };
        if (lastSeq > 0) headers["last-event-id"] = String(lastSeq);
        const response = await this.#fetch(url, { headers, signal: attemptSignal });
        if (!response.ok) {
          const err = await errorFromResponse(response);
          if (!isTransient(err)) throw err;
          cause = err;
        } else if (response.body !== null) {
          for await (const frame of parseSse(response.body, touch)) {
            // Frames already buffered keep parsing after an abort; the caller asked for no more.
            if (stop.aborted || frame.event === SSE_EVENTS.end) return;
            if (frame.event === SSE_EVENTS.error) throw errorFromBody(safeJson(frame.data), 500);
            if (frame.event !== SSE_EVENTS.update) continue;
            const update = TaskUpdateEventSchema.parse(safeJson(frame.data));
            // After a resume the server starts past lastSeq; the check also guards against a proxy replaying.
            if (update.seq !== undefined && update.seq <= lastSeq) continue;
            if (update.seq !== undefined) lastSeq = update.seq;
            failures = 0;
            yield update;
          }
          cause = new CoderClawError("UNAVAILABLE", "event stream closed before the task ended");
        }
      } catch (err) {
        if (stop.aborted) return;
        if (err instanceof z.ZodError) throw new CoderClawError("PROTOCOL", `bad event from server: ${err.message}`);
        // Our own idle abort surfaces as an error too; only errors the server stated are final.
        if (err instanceof CoderClawError && !attempt.signal.aborted && !isTransient(err)) throw err;
        cause = err;
      } finally {
        clearTimeout(idle);
        attempt.abort();
      }
      failures += 1;
      if (failures > this.#maxReconnects) {
        throw new CoderClawError("UNAVAILABLE", `event stream for task ${taskId} lost after ${this.#maxReconnects} reconnects`, { cause });
      }
      await sleep(Math.min(5_000, this.#reconnectDelayMs * 2 ** (failures - 1)), stop);
    }
  }

  /**
   * Call another route of the same HTTP API (workflows, say) with this client's
   * token, timeout and error mapping: `path` is below `/v1`, the answer is the
   * parsed JSON body, and an error answer is thrown as the CoderClawError it names.
   */
  async call(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    return this.#call(method, path, body);
  }

  /** GET a route of the API that answers bytes (a patch, an artifact), at most `maxBytes`. */
  async fetchBytes(path: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    const response = await this.#request("GET", path, undefined, "*/*");
    if (!response.ok) throw await errorFromResponse(response);
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > maxBytes) throw new CoderClawError("PROTOCOL", `GET ${path}: ${declared} bytes is over the limit of ${maxBytes}`);
    const bytes = Buffer.from(await response.arrayBuffer());
    if (bytes.byteLength > maxBytes) throw new CoderClawError("PROTOCOL", `GET ${path}: over the limit of ${maxBytes} bytes`);
    return bytes;
  }

  async #call(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<unknown> {
    const response = await this.#request(method, path, body, "application/json");
    if (!response.ok) throw await errorFromResponse(response);
    try {
      return await response.json();
    } catch (err) {
      throw new CoderClawError("PROTOCOL", `${method} ${path}: answer is not JSON`, { cause: err });
    }
  }

  async #request(method: "GET" | "POST" | "PUT", path: string, body: unknown, accept: string): Promise<Response> {
    const signal = AbortSignal.any([this.#closed.signal, AbortSignal.timeout(this.#timeoutMs)]);
    const headers: Record<string, string> = { accept, authorization: `Bearer ${await this.#token()}` };
    let payload: string | Uint8Array | undefined;
    if (body instanceof Uint8Array) {
      headers["content-type"] = "application/octet-stream";
      payload = body;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await this.#fetch(`${this.#base}${HTTP_API_PREFIX}${path}`, {
        method,
        headers,
        signal,
        ...(payload === undefined ? {} : { body: payload }),
      });
    } catch (err) {
      if (signal.aborted && !this.#closed.signal.aborted) {
        throw new CoderClawError("TIMEOUT", `${method} ${path}: no answer within ${this.#timeoutMs} ms`, { cause: err });
      }
      throw new CoderClawError("UNAVAILABLE", `${method} ${path}: cannot reach ${this.#base}`, { cause: err });
    }
    return response;
  }
}

function isTransient(err: CoderClawError): boolean {
  return err.code === "UNAVAILABLE" || err.code === "SHUTTING_DOWN" || err.code === "TIMEOUT";
}

async function errorFromResponse(response: Response): Promise<CoderClawError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  return errorFromBody(body, response.status);
}

function errorFromBody(body: unknown, status: number): CoderClawError {
  const parsed = ErrorBodySchema.safeParse(body);
  if (parsed.success && isErrorCode(parsed.data.error.code)) {
    const { code, message, field } = parsed.data.error;
    return new CoderClawError(code, message, field === undefined ? undefined : { field });
  }
  const code = CODE_BY_STATUS[status] ?? (status >= 500 ? "UNAVAILABLE" : "PROTOCOL");
  return new CoderClawError(code, `HTTP ${status}`);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Characters one event of the node's stream may hold: a task's state carries at
 * most 1 MiB of output, which JSON escaping can make a few times longer.
 */
export const MAX_SSE_EVENT_CHARS = 16 * 1024 * 1024;

/** The events of one of the node's `text/event-stream` bodies; `onBytes` runs on every chunk, heartbeats included. */
export function parseSse(body: ReadableStream<Uint8Array>, onBytes: () => void = () => undefined): AsyncGenerator<SseMessage> {
  return readSse(body, { maxEventChars: MAX_SSE_EVENT_CHARS, onBytes, error: (message) => new CoderClawError("PROTOCOL", `the server's event stream: ${message}`) });
}
