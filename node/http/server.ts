import { setMaxListeners } from "node:events";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyReply, type FastifyRequest } from "fastify";
import type { z } from "zod";
import type { SubmitOptions, TaskState, TaskSubmitRequest, TransportAdapter } from "../../src/contract/types.js";
import { CoderClawError, InvalidInputError, NotFoundError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import {
  AuditQuerySchema,
  HTTP_API_PREFIX,
  HTTP_STATUS_BY_CODE,
  MAX_INPUT_BYTES,
  SeqSchema,
  TaskChangesQuerySchema,
  TaskIdSchema,
  TaskPageQuerySchema,
  TaskSubmitQuerySchema,
  submitOptionsFromQuery,
  TaskSubmitRequestSchema,
  uploadedCodeOf,
  type ErrorBody,
  type UploadedCode,
} from "../../src/transport/http-wire.js";
import { grantTokenBytes } from "../workspaces/executor-grant.js";
import type { ResultFile } from "../workspaces/result-files.js";
import { chunkLength } from "../../src/workspace/manifest.js";
import type { OpenedChanges } from "../workspaces/task-result.js";
import { buildOpenApiDocument } from "./openapi.js";
import { writeSseStream } from "./sse.js";
import { createSlots } from "../../src/util/slots.js";
import { isLoopbackHost } from "../../src/util/loopback.js";
import { registerWorkflowRoutes, workflowResource, type HttpWorkflows, type WorkflowResource } from "./workflow-routes.js";
import { registerTaskApprovalRoutes, type TaskApprovalRouteDeps } from "./task-approval-routes.js";
import { registerApprovalRoutes } from "./approval-routes.js";
import type { ApprovalStreamEvent, RequestOwner, RequestViewer } from "./approval-stream.js";
import type { TaskApprovalView } from "../approvals/task-approvals.js";
import type { OpenApproval } from "../../src/workflows/index.js";
import { registerAdminRoutes, type HttpNodeAdmin } from "./admin-routes.js";
import { registerUiRoutes } from "./ui-routes.js";
import { registerUploadRoutes, type HttpCodeUploads } from "./upload-routes.js";
import { workspaceSpecOf } from "../../src/workspace/task-spec.js";

/**
 * What a request asks to do, named after the security service's permissions so
 * `authorize` can hand them to `checkPermission` unchanged.
 */
export type HttpAction = "task:submit" | "task:read" | "task:cancel" | "task:approve" | "agent:invoke" | "admin:all";

/** What the action is about. For tasks, `sessionId` is the task's owner session. */
export type HttpResource =
  | { type: "task"; id?: string; sessionId?: string; agentId?: string }
  | { type: "agent"; id: string }
  | { type: "runtime" }
  | { type: "audit" }
  /** A workflow: `sessionId` is the session that started it (see `WorkflowResource`). */
  | WorkflowResource
  /** A mesh administration call: `action` names it in the audit entry of the decision. */
  | { type: "admin"; action: "trust.revoke" | "trust.certify" | "mesh.invite" | "audit.verify" };

/** Answer of `authorize`: deny wins, and `reason` is returned to the caller on a 403. */
export interface AccessDecision {
  allowed: boolean;
  reason?: string;
}

/** Answer of `GET /v1/session`: who the caller is and which writes it may make. */
export interface SessionPermissions {
  userId: string;
  roles: string[];
  /** The session may only read: the dashboard says so beside the user, so no one types into it expecting to act. */
  readOnly: boolean;
  may: Record<"submit" | "cancel" | "approve" | "admin", boolean>;
}

/** Filter of `GET /v1/audit`, handed to the `audit` dependency. */
export type HttpAuditQuery = z.output<typeof AuditQuerySchema>;

/** What the transport knows about a request's origin, for the security service's connection record. */
export interface HttpRequestInfo {
  /** Peer address of the TCP connection (proxies are not trusted). */
  remoteAddress: string;
  /** True when the request arrived over TLS. */
  secure: boolean;
  userAgent?: string;
}

/** TLS material, PEM encoded. When given, the server speaks HTTPS only. */
export interface HttpTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
}

/**
 * Dependencies and limits of the HTTP server. The server owns no policy: the
 * security service supplies `authenticate`, `authorize` and `audit`, the engine
 * supplies `adapter`.
 *
 * @typeParam TAuth - what `authenticate` returns for a valid bearer token (a session context).
 */
export interface HttpServerOptions<TAuth> {
  adapter: TransportAdapter;
  /**
   * What a task that carried code changed (its patch and artifacts): the files,
   * and a reader of their blobs, which the routes send on one at a time (a
   * result can be larger than memory should hold); without it those routes
   * answer 404.
   */
  changes?: (taskId: string, sources: { grant?: Uint8Array }) => Promise<Pick<OpenedChanges, "files" | "read">>;
  /**
   * Turns a bearer token (a session token or an OIDC JWT) into a caller context;
   * throws, ideally a CoderClawError UNAUTHENTICATED, when it is invalid or expired.
   */
  authenticate: (bearerToken: string, request: HttpRequestInfo) => TAuth | Promise<TAuth>;
  /**
   * Asked before every request that is not a read (any method but GET and HEAD),
   * with `what` as `METHOD /path`: a read-only session is refused here (and the
   * refusal audited), whichever route it tried. Absent: every caller may write.
   */
  checkWrite?: (ctx: TAuth, what: string) => AccessDecision | Promise<AccessDecision>;
  /** Decides each action (and audits it); when absent every authenticated caller may do everything. */
  authorize?: (ctx: TAuth, action: HttpAction, resource: HttpResource) => AccessDecision | Promise<AccessDecision>;
  /**
   * Unaudited read check used to filter `GET /v1/tasks`, so a listing does not
   * write one audit entry per task (the security service's `canReadTask`).
   * Defaults to `authorize(ctx, "task:read", task)`.
   */
  canReadTask?: (ctx: TAuth, task: Extract<HttpResource, { type: "task" }>) => AccessDecision | Promise<AccessDecision>;
  /** The caller's session, stamped on tasks it submits without one so session isolation can apply. */
  sessionIdOf?: (ctx: TAuth) => string | undefined;
  /** Who the caller is (its user id), named in the audit log of what it starts. */
  subjectOf?: (ctx: TAuth) => string;
  /**
   * Takes code with a task (`/v1/blobs`, `/v1/trees` and `POST /v1/tasks?tree=`); without it those routes
   * answer 404 and a submission naming a tree is refused.
   */
  uploads?: HttpCodeUploads & {
    /** Submit `request` carrying tree `code.tree`, which `caller` uploaded (CodeUploads.submit, then the node's adapter): see nodeCodeUploads. */
    submit(caller: string, request: TaskSubmitRequest, options: SubmitOptions, code: UploadedCode): Promise<TaskState>;
  };
  /** Serves `/v1/workflows`; those routes answer 404 when absent. */
  workflows?: HttpWorkflows;
  /** Serves `/v1/task-approvals`; those routes answer 404 when absent. */
  taskApprovals?: TaskApprovalRouteDeps["approvals"];
  /** Serves `/v1/mesh`, `/v1/devices`, `/v1/invites` and `/v1/audit/verify`; those routes answer 404 when absent. */
  admin?: HttpNodeAdmin;
  /**
   * What the caller may do, unaudited, for `GET /v1/session` (the dashboard hides
   * what would be refused; the server still refuses it). A caller that `may.approve`
   * is also shown every approval request; any other, those of what it may read.
   * Absent: `authorize(ctx, "task:approve")` decides that.
   */
  permissionsOf?: (ctx: TAuth) => SessionPermissions;
  /** Serves `GET /v1/audit`; the route answers 404 when absent. */
  audit?: (query: HttpAuditQuery, ctx: TAuth) => unknown[] | Promise<unknown[]>;
  /** Default 127.0.0.1: remote exposure is a deliberate configuration choice. */
  host?: string;
  /**
   * Bound to loopback, the server answers only requests whose Host is a loopback name (DNS rebinding): these names
   * too (a reverse proxy on this machine that passes its own name on). Ignored when bound to another address.
   */
  allowedHosts?: readonly string[];
  /** Default 0 (an ephemeral port; read it from `url`). */
  port?: number;
  tls?: HttpTlsOptions;
  /** Largest request body in bytes; default a 1 MiB task input plus room for JSON escaping and the other fields. */
  bodyLimit?: number;
  /** Time to receive a whole request (headers and body), ms. Default 30 s. */
  requestTimeoutMs?: number;
  /** Socket inactivity before it is dropped, ms. Default 60 s; must exceed `sseHeartbeatMs`. */
  connectionTimeoutMs?: number;
  /** Idle keep-alive socket lifetime, ms. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** SSE heartbeat interval, ms. Default 15 s. */
  sseHeartbeatMs?: number;
  /** Concurrent SSE streams before new ones get 503. Default 1,000. */
  maxSseStreams?: number;
  /** Concurrent SSE streams of one session (or, without sessions, one subject) before its new ones get 503. Default 100. */
  maxSseStreamsPerSession?: number;
  /** A pino-compatible logger; default silent. */
  logger?: FastifyBaseLogger;
}

/** A listening server. */
export interface HttpServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** Open SSE streams right now. */
  sseStreams(): number;
  /** Ends SSE streams (clients will resume elsewhere), stops accepting, waits for in-flight requests. Idempotent. */
  close(): Promise<void>;
}

/** Default body limit: the engine's 1 MiB input cap plus 64 KiB for escaping and other fields. */
export const DEFAULT_BODY_LIMIT = MAX_INPUT_BYTES + 64 * 1024;

const MAX_BATCH_AUTHORIZE = 1000;

declare module "fastify" {
  interface FastifyRequest {
    authContext: unknown;
  }
}

/**
 * Starts the remote-enabled HTTP API on `host:port` and resolves once it listens.
 *
 * Routes (all JSON; errors are `{ error: { code, message, field? } }`):
 * `POST /v1/tasks[?route=]`, `GET /v1/tasks`, `GET /v1/tasks/:id`, `POST /v1/tasks/:id/cancel`, `POST /v1/tasks/:id/retry`,
 * `GET /v1/tasks/:id/history`, `GET /v1/tasks/:id/events` (SSE), `GET /v1/tasks/:id/patch` (a git patch), `GET /v1/tasks/:id/commits` (the agent's commits, an mbox),
 * `GET /v1/tasks/:id/artifacts` and `GET /v1/tasks/:id/artifacts/<path>` (bytes), `GET /v1/agents`, `GET /v1/skills`,
 * `GET /v1/status`, `GET /v1/audit`, and unauthenticated `GET /healthz` and
 * `GET /openapi.json`.
 */
export async function createHttpServer<TAuth>(options: HttpServerOptions<TAuth>): Promise<HttpServer> {
  const { adapter } = options;
  const host = options.host ?? "127.0.0.1";
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const connectionTimeout = options.connectionTimeoutMs ?? 60_000;
  const keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  const heartbeatMs = options.sseHeartbeatMs ?? 15_000;
  const maxSseStreams = options.maxSseStreams ?? 1000;
  // One caller could otherwise hold every stream the node serves, and every other client got 503.
  const maxSseStreamsPerSession = options.maxSseStreamsPerSession ?? 100;
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const authorize = options.authorize ?? (() => ({ allowed: true }));
  const tls = options.tls;

  const serverOptions: http.ServerOptions = {
    requestTimeout,
    headersTimeout: Math.min(requestTimeout, 10_000),
    keepAliveTimeout,
    // Node checks request and header deadlines on this interval (default 30 s);
    // a tighter one makes slow-header clients go away close to their deadline.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(requestTimeout / 4))),
  };

  const app = Fastify({
    bodyLimit,
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    return503OnClosing: true,
    forceCloseConnections: "idle",
    serverFactory: (handler) => {
      const server = tls
        ? https.createServer({ ...serverOptions, cert: tls.cert, key: tls.key }, handler)
        : http.createServer(serverOptions, handler);
      server.setTimeout(connectionTimeout);
      return server;
    },
  });

  const streams = new AbortController();
  // One listener per open SSE stream, bounded by maxSseStreams.
  setMaxListeners(0, streams.signal);
  const sseSlots = createSlots(maxSseStreams, maxSseStreamsPerSession);

  // Fastify parses text/plain bodies into strings by default; every endpoint here takes
  // JSON only, so any other type is refused as 415 rather than failing validation as 400.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    const { status, body } = errorResponse(err, request.headers["content-type"]);
    if (status >= 500) request.log.error({ err }, "request failed");
    if (status === 401) reply.header("www-authenticate", 'Bearer realm="coderclaw", error="invalid_token"');
    return reply.code(status).type("application/json").send(body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(errorBody("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0] ?? ""}`)),
  );

  // Bound to loopback, only loopback names reach the node: a web page whose name an attacker rebinds to 127.0.0.1
  // (DNS rebinding) sends its own name as Host, and is answered nothing, not even /healthz or the login page.
  if (isLoopbackHost(host)) {
    const allowed = new Set((options.allowedHosts ?? []).map((name) => name.toLowerCase()));
    app.addHook("onRequest", async (request, reply) => {
      const name = hostName(request.headers.host);
      if (name !== undefined && !isLoopbackHost(name) && !allowed.has(name.toLowerCase())) {
        return reply.code(403).type("application/json").send(errorBody("PERMISSION_DENIED", `this node answers ${host} only, not the name ${JSON.stringify(name.slice(0, 100))}: bound to loopback, it takes no other name (DNS rebinding?) but those of runtime.yaml http.allowedHosts`));
      }
    });
  }

  app.get("/healthz", async () => ({ ok: true }));
  app.get("/openapi.json", async () => buildOpenApiDocument());
  registerUiRoutes(app, { authenticate: options.authenticate });

  await app.register(
    async (api) => {
      api.decorateRequest("authContext", null);
      api.addHook("onRequest", async (request) => {
        request.authContext = await authenticateRequest(request, options.authenticate);
        if (options.checkWrite !== undefined && request.method !== "GET" && request.method !== "HEAD") {
          const decision = await options.checkWrite(request.authContext as TAuth, `${request.method} ${request.url.split("?")[0] ?? ""}`.slice(0, 300));
          if (!decision.allowed) throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? `${request.method} refused`);
        }
      });

      const ctxOf = (request: FastifyRequest): TAuth => request.authContext as TAuth;
      // Whose streams and uploads a request's are: its session's, or (a token without one) its subject's.
      const callerOf = (request: FastifyRequest): string => options.sessionIdOf?.(ctxOf(request)) ?? options.subjectOf?.(ctxOf(request)) ?? "http";
      const check = async (request: FastifyRequest, action: HttpAction, resource: HttpResource): Promise<void> => {
        const decision = await authorize(ctxOf(request), action, resource);
        if (!decision.allowed) throw new CoderClawError("PERMISSION_DENIED", decision.reason ?? `${action} denied`);
      };
      const canRead = options.canReadTask ?? ((ctx: TAuth, resource: HttpResource) => authorize(ctx, "task:read", resource));
      const readableTask = async (request: FastifyRequest, rawId: unknown): Promise<TaskState> => {
        const id = parseInput(TaskIdSchema, rawId, "id");
        const task = await adapter.getTaskState(id);
        if (task === null) throw new NotFoundError("task", id);
        await check(request, "task:read", taskResource(task));
        return task;
      };

      api.post("/tasks", async (request, reply) => {
        const body = parseInput(TaskSubmitRequestSchema, request.body);
        const { tree, artifacts, commits, ...placement } = parseInput(TaskSubmitQuerySchema, request.query);
        const submitOptions = submitOptionsFromQuery(placement);
        const code = uploadedCodeOf({ tree, artifacts, commits });
        if (code !== undefined && options.uploads === undefined) throw new InvalidInputError("this node takes no code over HTTP", "tree");
        const sessionId = body.sessionId ?? options.sessionIdOf?.(ctxOf(request));
        const submit = sessionId === undefined ? body : { ...body, sessionId };
        await check(request, "task:submit", {
          type: "task",
          ...(sessionId === undefined ? {} : { sessionId }),
          ...(submit.agentId === undefined ? {} : { agentId: submit.agentId }),
        });
        if (submit.agentId !== undefined) await check(request, "agent:invoke", { type: "agent", id: submit.agentId });
        const task = code === undefined ? await adapter.submitTask(submit, submitOptions) : await options.uploads!.submit(callerOf(request), submit, submitOptions, code);
        return reply.code(201).header("location", `${HTTP_API_PREFIX}/tasks/${encodeURIComponent(task.id)}`).send(task);
      });

      api.get("/tasks", async (request) => {
        const filter = parseInput(TaskPageQuerySchema, request.query);
        await check(request, "task:read", { type: "task", ...(filter.sessionId === undefined ? {} : { sessionId: filter.sessionId }) });
        const page = adapter.listTaskPage ? await adapter.listTaskPage(filter) : { tasks: await adapter.listTasks(filter) };
        // Filter per task rather than trusting the query: a session must not see
        // another's tasks just by leaving sessionId out.
        const visible: TaskState[] = [];
        for (const task of page.tasks.slice(0, MAX_BATCH_AUTHORIZE)) {
          if ((await canRead(ctxOf(request), taskResource(task))).allowed) visible.push(task);
        }
        return page.next === undefined ? { tasks: visible } : { tasks: visible, next: page.next };
      });

      api.get<{ Params: { id: string } }>("/tasks/:id", async (request) => readableTask(request, request.params.id));

      api.post<{ Params: { id: string } }>("/tasks/:id/retry", async (request, reply) => {
        const old = await readableTask(request, request.params.id);
        // A retry submits the same work again: it needs what submitting it needs.
        await check(request, "task:submit", taskResource(old));
        if (old.agentId !== undefined) await check(request, "agent:invoke", { type: "agent", id: old.agentId });
        if (!adapter.retryTask) throw new CoderClawError("UNAVAILABLE", "this runtime cannot retry tasks");
        const task = await adapter.retryTask(old.id);
        return reply.code(201).header("location", `${HTTP_API_PREFIX}/tasks/${encodeURIComponent(task.id)}`).send(task);
      });

      api.post<{ Params: { id: string } }>("/tasks/:id/cancel", async (request) => {
        const task = await readableTask(request, request.params.id);
        await check(request, "task:cancel", taskResource(task));
        return { cancelled: await adapter.cancelTask(task.id) };
      });

      /** The changes of a task the caller may read; `asked`, if given, refuses (throws) for a task whose changes lack what a route serves. */
      const changesOf = async (request: FastifyRequest, id: string, asked?: (task: TaskState) => void): Promise<Awaited<ReturnType<NonNullable<HttpServerOptions<TAuth>["changes"]>>>> => {
        const task = await readableTask(request, id);
        asked?.(task);
        if (options.changes === undefined) throw new CoderClawError("NOT_FOUND", "this node keeps no changes of tasks");
        // `?grant=`: a token the task's submitter made for this node (`coderclaw task grant`), to fetch the changes from any member holding them.
        const { grant } = parseInput(TaskChangesQuerySchema, request.query);
        return options.changes(task.id, grant === undefined ? {} : { grant: grantTokenBytes(grant, "grant") });
      };

      /** The bytes of `file`, a blob at a time: the first read before the answer starts, so that a result not held fails as an error, not a cut body. */
      const bodyOf = async (changes: Pick<OpenedChanges, "read">, file: ResultFile | undefined): Promise<Readable | Buffer> => {
        if (file === undefined || file.chunks.length === 0) return Buffer.alloc(0);
        // The answer states the manifest's size as its length. A blob of another length (its digest matches its own
        // bytes, which a hostile executor chose) would end the body short or run past it, into what the client reads as
        // the answer to its next request on the connection: refused, which cuts the connection once the answer started.
        const chunk = async (index: number): Promise<Uint8Array> => {
          const bytes = await changes.read(file.chunks[index]!);
          if (bytes.byteLength !== chunkLength(file.size, index)) {
            throw new CoderClawError("EXECUTION_FAILED", `the result's blob ${file.chunks[index]} of ${file.path} is ${bytes.byteLength} bytes, not the ${chunkLength(file.size, index)} its manifest states`);
          }
          return bytes;
        };
        const first = await chunk(0);
        return Readable.from(
          (async function* () {
            yield first;
            for (let index = 1; index < file.chunks.length; index++) yield await chunk(index);
          })(),
        );
      };

      api.get<{ Params: { id: string } }>("/tasks/:id/patch", async (request, reply) => {
        const changes = await changesOf(request, request.params.id);
        const patch = changes.files.find((f) => f.kind === "patch");
        return reply.type("text/x-diff; charset=utf-8").header("content-length", patch?.size ?? 0).send(await bodyOf(changes, patch));
      });

      api.get<{ Params: { id: string } }>("/tasks/:id/commits", async (request, reply) => {
        const changes = await changesOf(request, request.params.id, (task) => {
          // Not an empty series: a client would read it as an agent that made no commits.
          if (workspaceSpecOf(task.metadata)?.commits !== true) throw new CoderClawError("NOT_FOUND", `task ${task.id} was not submitted with commits: what its agent did is in its patch`);
        });
        const commits = changes.files.find((f) => f.kind === "commits");
        return reply.type("application/mbox").header("content-length", commits?.size ?? 0).send(await bodyOf(changes, commits));
      });

      api.get<{ Params: { id: string } }>("/tasks/:id/artifacts", async (request) => {
        const { files } = await changesOf(request, request.params.id);
        return { artifacts: files.filter((f) => f.kind === "artifact").map((a) => ({ path: a.path, size: a.size })) };
      });

      api.get<{ Params: { id: string; "*": string } }>("/tasks/:id/artifacts/*", async (request, reply) => {
        const changes = await changesOf(request, request.params.id);
        const wanted = request.params["*"];
        const artifact = changes.files.find((f) => f.kind === "artifact" && f.path === wanted);
        if (artifact === undefined) throw new CoderClawError("NOT_FOUND", `task ${request.params.id} brought back no artifact ${wanted.slice(0, 200)}`);
        return reply.type("application/octet-stream").header("content-disposition", "attachment").header("content-length", artifact.size).send(await bodyOf(changes, artifact));
      });

      api.get<{ Params: { id: string } }>("/tasks/:id/history", async (request) => {
        const task = await readableTask(request, request.params.id);
        if (adapter.getTaskEvents === undefined) throw new CoderClawError("NOT_FOUND", "this node keeps no task histories; stream the task's events instead");
        return { events: await adapter.getTaskEvents(task.id) };
      });

      const openSse = async <T extends { seq?: number }>(reply: FastifyReply, source: (signal: AbortSignal) => AsyncIterable<T>): Promise<void> => {
        const slot = sseSlots.take(callerOf(reply.request));
        if ("refused" in slot) {
          throw new CoderClawError("UNAVAILABLE", slot.refused === "all" ? "too many open event streams; retry later" : `this session has ${slot.held} event streams open, the most one may; close one, or retry later`);
        }
        reply.hijack();
        try {
          // A stream outlives the request's authentication: a session revoked or expired since then ends it.
          const recheck = async (): Promise<void> => void (await authenticateRequest(reply.request, options.authenticate));
          await writeSseStream(reply.raw, source, { heartbeatMs, retryMs: 1000, signal: streams.signal, recheck });
        } finally {
          slot.release();
        }
      };

      api.get<{ Params: { id: string }; Querystring: { after?: string } }>("/tasks/:id/events", async (request, reply) => {
        const afterSeq = resumePosition(request);
        const task = await readableTask(request, request.params.id);
        await openSse(reply, (signal) => adapter.streamTaskUpdates(task.id, { ...(afterSeq === undefined ? {} : { afterSeq }), signal }));
      });

      // Whether the caller may decide approval requests, unaudited: it decides what their listings show.
      const mayDecide = async (request: FastifyRequest): Promise<boolean> => options.permissionsOf?.(ctxOf(request)).may.approve ?? (await authorize(ctxOf(request), "task:approve", { type: "task" })).allowed;
      /** What the routes of workflow steps' and tasks' approvals share: a caller is shown the requests of what it may read (`ownerOf` each), or all when it may decide them. */
      const approvalRouteDeps = <T>(ownerOf: (approval: T) => Promise<RequestOwner | undefined>, mayRead: (request: FastifyRequest, owner: RequestOwner) => Promise<boolean>) => ({
        check,
        subjectOf: (request: FastifyRequest) => options.subjectOf?.(ctxOf(request)) ?? "http",
        viewerOf: (request: FastifyRequest): RequestViewer<T> => ({ seesAll: () => mayDecide(request), ownerOf, mayRead: (owner) => mayRead(request, owner) }),
        stream: (reply: FastifyReply, events: (signal: AbortSignal) => AsyncIterable<ApprovalStreamEvent<T>>) => openSse(reply, events),
      });

      if (options.workflows !== undefined) {
        const workflows = options.workflows;
        // A workflow is its starting session's as a task is: the same unaudited check filters both listings.
        const mayReadWorkflow = async (request: FastifyRequest, workflow: WorkflowResource): Promise<boolean> => {
          const ctx = ctxOf(request);
          const { id, sessionId } = workflow;
          const decision = options.canReadTask === undefined ? await authorize(ctx, "task:read", workflow) : await options.canReadTask(ctx, { type: "task", id, ...(sessionId !== undefined && { sessionId }) });
          return decision.allowed;
        };
        registerWorkflowRoutes(api, {
          workflows,
          check,
          mayRead: mayReadWorkflow,
          starterOf: (request) => {
            const sessionId = options.sessionIdOf?.(ctxOf(request));
            return { subject: options.subjectOf?.(ctxOf(request)) ?? "http", ...(sessionId !== undefined && { sessionId }) };
          },
          stream: (reply, records) => openSse(reply, records),
        });
        if (workflows.approvals !== undefined) {
          const ownerOf = async (a: OpenApproval): Promise<RequestOwner | undefined> => {
            const record = await workflows.get(a.workflowId);
            return record === undefined ? undefined : workflowResource(record);
          };
          registerApprovalRoutes(api, { approvals: workflows.approvals, ...approvalRouteDeps(ownerOf, (request, owner) => mayReadWorkflow(request, { ...owner, type: "workflow" })) });
        }
      }

      if (options.taskApprovals !== undefined) {
        // The task's session as a read of the task finds it: another member's task is asked of its holder.
        const ownerOf = async (a: TaskApprovalView): Promise<RequestOwner | undefined> => {
          const task = await adapter.getTaskState(a.taskId);
          return task === null ? undefined : { id: task.id, sessionId: task.sessionId };
        };
        registerTaskApprovalRoutes(api, { approvals: options.taskApprovals, ...approvalRouteDeps(ownerOf, async (request, owner) => (await canRead(ctxOf(request), { ...owner, type: "task" })).allowed) });
      }

      api.get("/agents", async (request) => {
        await check(request, "task:read", { type: "runtime" });
        return { agents: await adapter.listAgents() };
      });

      api.get("/skills", async (request) => {
        await check(request, "task:read", { type: "runtime" });
        return { skills: await adapter.listSkills() };
      });

      if (options.admin !== undefined) registerAdminRoutes(api, { admin: options.admin, check });
      if (options.uploads !== undefined) {
        registerUploadRoutes(api, {
          uploads: options.uploads,
          // Unaudited when allowed: a tree of 200 MB is some thirty requests, and the submission that names it is audited.
          // A refusal goes through the audited check, which records it.
          check: async (request) => {
            if (options.permissionsOf?.(ctxOf(request)).may.submit === true) return;
            const sessionId = options.sessionIdOf?.(ctxOf(request));
            await check(request, "task:submit", { type: "task", ...(sessionId !== undefined && { sessionId }) });
          },
          callerOf,
        });
      }

      api.get("/session", async (request) => {
        const ctx = ctxOf(request);
        const all = { submit: true, cancel: true, approve: true, admin: true };
        return options.permissionsOf?.(ctx) ?? { userId: options.subjectOf?.(ctx) ?? "http", roles: [], readOnly: false, may: all };
      });

      api.get("/status", async (request) => {
        await check(request, "task:read", { type: "runtime" });
        return adapter.getStatus();
      });

      api.get("/audit", async (request) => {
        if (options.audit === undefined) throw new CoderClawError("NOT_FOUND", "this node has no audit log");
        const query = parseInput(AuditQuerySchema, request.query);
        await check(request, "admin:all", { type: "audit" });
        return { entries: await options.audit(query, ctxOf(request)) };
      });
    },
    { prefix: HTTP_API_PREFIX },
  );

  // Hijacked SSE responses are invisible to Fastify's close: end them first so
  // close() does not wait on streams that would otherwise last as long as their task.
  app.addHook("preClose", async () => {
    streams.abort();
  });

  try {
    await app.listen({ host, port: options.port ?? 0 });
  } catch (err) {
    await app.close();
    throw new CoderClawError("UNAVAILABLE", `cannot listen on ${host}:${options.port ?? 0}: ${(err as Error).message}`, { cause: err });
  }
  const port = (app.server.address() as AddressInfo).port;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `${tls ? "https" : "http"}://${hostPart}:${port}`,
    port,
    sseStreams: () => sseSlots.held(),
    close: () => (closing ??= app.close()),
  };
}

async function authenticateRequest<TAuth>(
  request: FastifyRequest,
  authenticate: (token: string, info: HttpRequestInfo) => TAuth | Promise<TAuth>,
): Promise<TAuth> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  if (match === null || match[1] === undefined) {
    throw new CoderClawError("UNAUTHENTICATED", "missing bearer token (Authorization: Bearer <token>)");
  }
  try {
    const userAgent = request.headers["user-agent"];
    return await authenticate(match[1], {
      remoteAddress: request.socket.remoteAddress ?? "",
      secure: request.protocol === "https",
      ...(userAgent === undefined ? {} : { userAgent }),
    });
  } catch (err) {
    // Fail closed, and do not echo verifier internals for errors not meant for callers.
    if (err instanceof CoderClawError && err.code === "UNAUTHENTICATED") throw err;
    if (err instanceof CoderClawError && HTTP_STATUS_BY_CODE[err.code] >= 500) throw err;
    throw new CoderClawError("UNAUTHENTICATED", "invalid token", { cause: err });
  }
}

function resumePosition(request: FastifyRequest<{ Querystring: { after?: string } }>): number | undefined {
  const header = request.headers["last-event-id"];
  const raw = typeof header === "string" && header !== "" ? header : request.query.after;
  if (raw === undefined) return undefined;
  return parseInput(SeqSchema, raw, typeof header === "string" && header !== "" ? "Last-Event-ID" : "after");
}

function taskResource(task: TaskState): Extract<HttpResource, { type: "task" }> {
  return {
    type: "task",
    id: task.id,
    ...(task.sessionId === undefined ? {} : { sessionId: task.sessionId }),
    ...(task.agentId === undefined ? {} : { agentId: task.agentId }),
  };
}

/** The name of a Host header, without its port; undefined when there is none (HTTP/1.0). */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === "") return undefined;
  return header.startsWith("[") ? header.slice(0, header.indexOf("]") + 1) : header.replace(/:\d*$/, "");
}

function errorBody(code: string, message: string, field?: string): ErrorBody {
  return { error: { code, message, ...(field === undefined ? {} : { field }) } };
}

function errorResponse(err: FastifyError | Error, contentType: string | undefined): { status: number; body: ErrorBody } {
  if (err instanceof CoderClawError) {
    const status = HTTP_STATUS_BY_CODE[err.code];
    // A broken node (corrupt storage, bad config) says so, not where: its message names paths and internals, which go to its log.
    if (status === 500) return { status, body: errorBody(err.code, "the node failed to answer; the reason is in its log") };
    return { status, body: errorBody(err.code, err.message, err.field) };
  }
  const fastifyError = err as Partial<FastifyError>;
  const status = fastifyError.statusCode;
  if (status === 413) return { status, body: errorBody("INVALID_INPUT", "request body too large") };
  if (status === 415) {
    const given = contentType === undefined ? "none" : JSON.stringify(contentType.split(";")[0]!.trim().slice(0, 100));
    return { status, body: errorBody("INVALID_INPUT", `content-type must be application/json, not ${given}`) };
  }
  if (status !== undefined && status >= 400 && status < 500) {
    const message = err instanceof SyntaxError || fastifyError.code === "FST_ERR_CTP_INVALID_JSON_BODY"
      ? `malformed JSON body: ${err.message}`
      : err.message;
    return { status, body: errorBody("INVALID_INPUT", message) };
  }
  return { status: 500, body: errorBody("UNAVAILABLE", "internal error") };
}
