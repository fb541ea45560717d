import http from "node:http";
import net from "node:net";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TransportAdapter } from "../../src/contract/types.js";
import { createHttpServer, type AccessDecision, type HttpAction, type HttpResource, type HttpServer, type HttpServerOptions, type SessionPermissions } from "../../node/http/index.js";

/** Caller context the test authenticator hands out. */
export interface TestCtx {
  userId: string;
  sessionId: string;
  roles: string[];
}

/** Bearer tokens the test server knows. `expired` is a known token past its expiry. */
export const TOKENS = {
  alice: "tok-alice-developer",
  bob: "tok-bob-developer",
  reader: "tok-carol-readonly",
  admin: "tok-root-admin",
  expired: "tok-alice-expired",
} as const;

const sessions = new Map<string, { ctx: TestCtx; expiresAt: number }>([
  [TOKENS.alice, { ctx: { userId: "alice", sessionId: "s-alice", roles: ["developer"] }, expiresAt: Number.MAX_SAFE_INTEGER }],
  [TOKENS.bob, { ctx: { userId: "bob", sessionId: "s-bob", roles: ["developer"] }, expiresAt: Number.MAX_SAFE_INTEGER }],
  [TOKENS.reader, { ctx: { userId: "carol", sessionId: "s-carol", roles: ["readonly"] }, expiresAt: Number.MAX_SAFE_INTEGER }],
  [TOKENS.admin, { ctx: { userId: "root", sessionId: "s-root", roles: ["admin"] }, expiresAt: Number.MAX_SAFE_INTEGER }],
  [TOKENS.expired, { ctx: { userId: "alice", sessionId: "s-alice", roles: ["developer"] }, expiresAt: 0 }],
]);

/** Session-token authentication as the security service does it: unknown or expired tokens are refused. */
export function authenticate(token: string): TestCtx {
  const session = sessions.get(token);
  if (session === undefined) throw new CoderClawError("UNAUTHENTICATED", "unknown token");
  if (session.expiresAt <= Date.now()) throw new CoderClawError("UNAUTHENTICATED", "token expired");
  return session.ctx;
}

const PERMISSIONS: Record<string, readonly HttpAction[]> = {
  developer: ["task:submit", "task:read", "task:cancel", "agent:invoke"],
  readonly: ["task:read"],
};

/** Role permissions plus session isolation: only admins see other sessions' tasks. */
export function authorize(ctx: TestCtx, action: HttpAction, resource: HttpResource): AccessDecision {
  if (ctx.roles.includes("admin")) return { allowed: true };
  if (!ctx.roles.some((role) => PERMISSIONS[role]?.includes(action))) return { allowed: false, reason: `${action} not granted` };
  if (resource.type === "task" && resource.sessionId !== undefined && resource.sessionId !== ctx.sessionId) {
    return { allowed: false, reason: "task belongs to another session" };
  }
  if (resource.type === "workflow" && resource.sessionId !== ctx.sessionId) return { allowed: false, reason: "workflow belongs to another session" };
  return { allowed: true };
}

/** What `GET /v1/session` answers, from the same table as {@link authorize}. */
export function permissionsOf(ctx: TestCtx): SessionPermissions {
  const may = (action: HttpAction): boolean => authorize(ctx, action, { type: "runtime" }).allowed;
  return { userId: ctx.userId, roles: [...ctx.roles], readOnly: false, may: { submit: may("task:submit"), cancel: may("task:cancel"), approve: may("task:approve"), admin: may("admin:all") } };
}

/** Starts the real server on 127.0.0.1:0 with the test's auth. */
export function startServer(adapter: TransportAdapter, extra: Partial<HttpServerOptions<TestCtx>> = {}): Promise<HttpServer> {
  return createHttpServer<TestCtx>({
    adapter,
    authenticate,
    authorize,
    permissionsOf,
    sessionIdOf: (ctx) => ctx.sessionId,
    ...extra,
  });
}

/** A raw answer: status, headers and parsed JSON body. */
export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/** One request over node:http, so tests control bytes and headers exactly. */
export function request(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<RawAnswer> {
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.token !== undefined) headers["authorization"] = `Bearer ${options.token}`;
  if (options.body !== undefined) {
    headers["content-type"] ??= "application/json";
    headers["content-length"] = Buffer.byteLength(options.body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Non-JSON bodies are returned as text so the test can say what came back.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** A parsed SSE frame as it came off the wire. */
export interface RawFrame {
  id?: string;
  event: string;
  data: string;
}

/**
 * Opens a raw SSE connection and collects frames until `until` says stop or the
 * server ends the stream; returns the frames and a function that cuts the socket.
 */
export function openSse(
  base: string,
  path: string,
  token: string,
  headers: Record<string, string> = {},
): { frames: RawFrame[]; ended: Promise<number>; cut: () => void; next: (count: number) => Promise<void> } {
  const frames: RawFrame[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let buffer = "";
  let cutting = false;
  let req: http.ClientRequest;
  const ended = new Promise<number>((resolve, reject) => {
    req = http.get(`${base}${path}`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", ...headers }, agent: false }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let split = buffer.indexOf("\n\n");
        while (split !== -1) {
          const block = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          const frame: RawFrame = { event: "message", data: "" };
          let isData = false;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const key = line.slice(0, colon);
            const value = line.slice(colon + 2);
            if (key === "id") frame.id = value;
            if (key === "event") frame.event = value;
            if (key === "data") {
              frame.data = value;
              isData = true;
            }
          }
          if (isData) frames.push(frame);
          for (const w of waiters.filter((w) => frames.length >= w.count)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
          split = buffer.indexOf("\n\n");
        }
      });
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("close", () => resolve(res.statusCode ?? 0));
      res.on("error", (err) => (cutting ? resolve(res.statusCode ?? 0) : reject(err)));
    });
    req.on("error", (err) => (cutting ? resolve(0) : reject(err)));
  });
  return {
    frames,
    ended,
    cut: () => {
      cutting = true;
      req.destroy();
    },
    next: (count) =>
      frames.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve })),
  };
}

/** Polls `check` on the event loop until true, at most `rounds` times. */
export async function eventually(check: () => boolean | Promise<boolean>, rounds = 200): Promise<void> {
  for (let i = 0; i < rounds; i += 1) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition not met in time");
}

/**
 * A TCP relay in front of the server that the test can cut, to drop live
 * connections the way a flaky network does. `seen` holds every request head.
 */
export async function startRelay(targetPort: number): Promise<{ url: string; seen: string[]; cutAll: () => void; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const seen: string[] = [];
  const relay = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1");
      if (/^[A-Z]+ \/\S* HTTP\/1\.1\r\n/.test(text)) seen.push(text.split("\r\n\r\n")[0] ?? text);
    });
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const port = (relay.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    cutAll: () => {
      for (const s of [...sockets]) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of [...sockets]) s.destroy();
        relay.close(() => resolve());
      }),
  };
}
