import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpListenOptions, type HttpServer } from "../../node/http/index.js";
import { loadRuntimeConfig } from "../../src/config/runtime-config.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, authenticate, eventually, request, startServer, type RawAnswer } from "./helpers.js";

const submitBody = (extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ description: "say hi", input: "hi", agentId: "echo", ...extra });

function expectError(answer: RawAnswer, status: number, code: string): { code: string; message: string; field?: string } {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
  const error = (answer.body as { error: { code: string; message: string; field?: string } }).error;
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe("string");
  return error;
}

describe("HTTP server over real sockets", () => {
  let engine: Engine;
  let server: HttpServer;
  const audited: unknown[] = [];

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter, {
      bodyLimit: 64 * 1024,
      sseHeartbeatMs: 100,
      audit: (query) => {
        audited.push(query);
        return [{ action: "task.submit", result: "allowed" }];
      },
    });
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("bound to loopback, answers loopback names only: a page whose name was rebound to 127.0.0.1 gets nothing, not even /healthz", async () => {
    for (const host of ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "[::2]:1", "[::1", "[::ffff:8.8.8.8]", "localhost.evil.example"]) {
      const refused = await request(server.url, "GET", "/healthz", { headers: { host } });
      expect(expectError(refused, 403, "PERMISSION_DENIED").message, host).toMatch(/bound to loopback, it takes no other name/);
      expectError(await request(server.url, "GET", "/", { headers: { host } }), 403, "PERMISSION_DENIED");
      expectError(await request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body: submitBody(), headers: { host } }), 403, "PERMISSION_DENIED");
    }
    for (const host of ["127.0.0.1", `127.0.0.1:${server.port}`, "localhost:1", "LOCALHOST", "[::1]:8080", "127.1.2.3", "localhost.", "127.0.0.1.:80", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]:1"]) {
      expect((await request(server.url, "GET", "/healthz", { headers: { host } })).status, host).toBe(200);
    }
    // A proxy in front that passes its own name on: named in runtime.yaml, answered.
    const proxied = await startServer(engine.adapter, { allowedHosts: ["code.example"] });
    try {
      expect((await request(proxied.url, "GET", "/healthz", { headers: { host: "CODE.example:443" } })).status).toBe(200);
      expectError(await request(proxied.url, "GET", "/healthz", { headers: { host: "evil.example" } }), 403, "PERMISSION_DENIED");
    } finally {
      await proxied.close();
    }
  });

  it("binds loopback and serves /healthz and /openapi.json without a token", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await request(server.url, "GET", "/healthz");
    expect(health).toMatchObject({ status: 200, body: { ok: true } });
    const doc = (await request(server.url, "GET", "/openapi.json")).body as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        "/healthz",
        "/openapi.json",
        "/v1/agents",
        "/v1/approvals",
        "/v1/approvals/events",
        "/v1/approvals/{id}/approve",
        "/v1/approvals/{id}/deny",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/blobs",
        "/v1/blobs/missing",
        "/v1/devices",
        "/v1/devices/{id}/revoke",
        "/v1/devices/{id}/trust",
        "/v1/invites",
        "/v1/mesh",
        "/v1/session",
        "/v1/skills",
        "/v1/status",
        "/v1/task-approvals",
        "/v1/task-approvals/events",
        "/v1/task-approvals/{taskId}/approve",
        "/v1/task-approvals/{taskId}/deny",
        "/v1/tasks",
        "/v1/tasks/{id}",
        "/v1/tasks/{id}/cancel",
        "/v1/tasks/{id}/commits",
        "/v1/tasks/{id}/retry",
        "/v1/trees/{id}",
        "/v1/tasks/{id}/events",
        "/v1/tasks/{id}/history",
        "/v1/tasks/{id}/patch",
        "/v1/tasks/{id}/artifacts",
        "/v1/tasks/{id}/artifacts/{path}",
        "/v1/workflows",
        "/v1/workflows/{id}",
        "/v1/workflows/{id}/cancel",
        "/v1/workflows/{id}/events",
      ].sort(),
    );
    expect(Object.keys(doc.paths["/v1/tasks"] ?? {}).sort()).toEqual(["get", "post"]);
    const operations = Object.values(doc.paths).flatMap((item) => Object.values(item) as { operationId: string; responses: object }[]);
    expect(new Set(operations.map((o) => o.operationId)).size).toBe(operations.length);
    for (const op of operations) expect(Object.keys(op.responses).length, op.operationId).toBeGreaterThan(0);
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1] ?? "");
    expect(refs.length).toBeGreaterThan(10);
    for (const name of refs) expect(doc.components.schemas, name).toHaveProperty(name);
    expect(doc.components.schemas["TaskSubmitRequest"]?.properties).toHaveProperty("description");
    expect(doc.components.schemas["TaskState"]?.properties?.["createdAt"]).toMatchObject({ type: "string", format: "date-time" });
  });

  it("submits, reads, lists and cancels tasks, and lists agents, skills and status", async () => {
    const submitted = await request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body: submitBody() });
    expect(submitted.status).toBe(201);
    const task = submitted.body as { id: string; status: string; sessionId: string; createdAt: string };
    expect(submitted.headers.location).toBe(`/v1/tasks/${task.id}`);
    expect(task.sessionId).toBe("s-alice");
    expect(new Date(task.createdAt).toISOString()).toBe(task.createdAt);

    await eventually(async () => ((await request(server.url, "GET", `/v1/tasks/${task.id}`, { token: TOKENS.alice })).body as { status: string }).status === "completed");
    const done = await request(server.url, "GET", `/v1/tasks/${task.id}`, { token: TOKENS.alice });
    expect(done.body).toMatchObject({ id: task.id, status: "completed", output: "hi" });

    const manual = await engine.startManual();
    const listed = await request(server.url, "GET", "/v1/tasks?status=running&limit=5", { token: TOKENS.alice });
    expect((listed.body as { tasks: { id: string }[] }).tasks.map((t) => t.id)).toEqual([manual]);

    expect((await request(server.url, "POST", `/v1/tasks/${manual}/cancel`, { token: TOKENS.alice })).body).toEqual({ cancelled: true });
    expect((await request(server.url, "POST", `/v1/tasks/${manual}/cancel`, { token: TOKENS.alice })).body).toEqual({ cancelled: false });

    const agents = (await request(server.url, "GET", "/v1/agents", { token: TOKENS.alice })).body as { agents: { id: string }[] };
    expect(agents.agents.map((a) => a.id)).toEqual(["echo", "sleep", "manual"]);
    expect((await request(server.url, "GET", "/v1/skills", { token: TOKENS.alice })).body).toEqual({ skills: [] });
    expect((await request(server.url, "GET", "/v1/status", { token: TOKENS.alice })).body).toMatchObject({ healthy: true, version: expect.any(String) });
  });

  it("answers every bad input with the right status and a JSON error body", async () => {
    const base = server.url;
    const alice = TOKENS.alice;

    expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: '{"description": "x", "input": ' }), 400, "INVALID_INPUT");
    expect(expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: "not json" }), 400, "INVALID_INPUT").message).toMatch(/JSON/);
    expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: JSON.stringify({ input: "x".repeat(128 * 1024), description: "big" }) }), 413, "INVALID_INPUT");
    expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: "description=x", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "INVALID_INPUT");
    expect(expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: JSON.stringify({ input: "x" }) }), 400, "INVALID_INPUT").field).toBe("description");
    expect(expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: submitBody({ prority: 1 }) }), 400, "INVALID_INPUT").field).toBe("prority");
    expect(expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: "[1,2]" }), 400, "INVALID_INPUT").message).toMatch(/object/);
    expect(expectError(await request(base, "GET", "/v1/tasks?status=done", { token: alice }), 400, "INVALID_INPUT").field).toBe("status");
    expect(expectError(await request(base, "GET", "/v1/tasks?limit=-1", { token: alice }), 400, "INVALID_INPUT").field).toBe("limit");
    expect(expectError(await request(base, "GET", "/v1/tasks/bad%20id!", { token: alice }), 400, "INVALID_INPUT").field).toBe("id");
    expectError(await request(base, "GET", "/v1/tasks/00000000-0000-4000-8000-000000000000", { token: alice }), 404, "NOT_FOUND");
    expectError(await request(base, "POST", "/v1/tasks", { token: alice, body: submitBody({ agentId: "nobody" }) }), 422, "UNKNOWN_AGENT");

    const missing = await request(base, "GET", "/v1/tasks");
    expectError(missing, 401, "UNAUTHENTICATED");
    expect(missing.headers["www-authenticate"]).toMatch(/^Bearer /);
    expectError(await request(base, "GET", "/v1/tasks", { headers: { authorization: "Basic YTpi" } }), 401, "UNAUTHENTICATED");
    expect(expectError(await request(base, "GET", "/v1/tasks", { token: TOKENS.expired }), 401, "UNAUTHENTICATED").message).toMatch(/expired/);
    expectError(await request(base, "GET", "/v1/tasks", { token: "tok-forged" }), 401, "UNAUTHENTICATED");
    expectError(await request(base, "POST", "/v1/tasks", { token: "tok-forged", body: "not json" }), 401, "UNAUTHENTICATED");

    expectError(await request(base, "GET", "/v2/tasks", { token: alice }), 404, "NOT_FOUND");
    expectError(await request(base, "DELETE", "/v1/tasks", { token: alice }), 404, "NOT_FOUND");
    expectError(await request(base, "GET", "/nope"), 404, "NOT_FOUND");

    expectError(await request(base, "POST", "/v1/tasks", { token: TOKENS.reader, body: submitBody() }), 403, "PERMISSION_DENIED");

    expect((await request(base, "GET", "/healthz")).status).toBe(200);
    expect((await request(base, "POST", "/v1/tasks", { token: alice, body: submitBody() })).status).toBe(201);
  });

  it("answers a broken node's 500 with its code and no details, which go to its log", async () => {
    const broken = Object.assign(Object.create(engine.adapter) as typeof engine.adapter, { getStatus: () => Promise.reject(new CoderClawError("STORAGE_CORRUPT", "/home/user/.coderclaw/tasks/000123.ldb: bad block")) });
    const other = await startServer(broken);
    try {
      const answer = await request(other.url, "GET", "/v1/status", { token: TOKENS.alice });
      expect(answer.status).toBe(500);
      expect(answer.body).toEqual({ error: { code: "STORAGE_CORRUPT", message: "the node failed to answer; the reason is in its log" } });
    } finally {
      await other.close();
    }
  });

  it("answers a concurrent burst of bad requests correctly and keeps serving good ones", async () => {
    const bad: [() => Promise<RawAnswer>, number][] = [
      [() => request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body: "{oops" }), 400],
      [() => request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body: "x".repeat(100 * 1024) }), 413],
      [() => request(server.url, "GET", "/v1/status", { token: "tok-wrong" }), 401],
      [() => request(server.url, "GET", "/v1/status"), 401],
      [() => request(server.url, "GET", "/v1/nowhere", { token: TOKENS.alice }), 404],
    ];
    const answers = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const [send, status] = bad[i % bad.length] as [() => Promise<RawAnswer>, number];
        const answer = await send();
        return { status, answer };
      }),
    );
    for (const { status, answer } of answers) {
      expect(answer.status).toBe(status);
      expect(answer.body).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
    }
    const good = await request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body: submitBody() });
    expect(good.status).toBe(201);
  });

  it("keeps sessions apart: another session's task is invisible unless admin", async () => {
    const task = { id: await engine.startManual() };
    expectError(await request(server.url, "GET", `/v1/tasks/${task.id}`, { token: TOKENS.bob }), 403, "PERMISSION_DENIED");
    expectError(await request(server.url, "POST", `/v1/tasks/${task.id}/cancel`, { token: TOKENS.bob }), 403, "PERMISSION_DENIED");
    expectError(await request(server.url, "GET", `/v1/tasks/${task.id}/events`, { token: TOKENS.bob }), 403, "PERMISSION_DENIED");
    expectError(await request(server.url, "POST", "/v1/tasks", { token: TOKENS.bob, body: submitBody({ sessionId: "s-alice" }) }), 403, "PERMISSION_DENIED");
    const bobList = (await request(server.url, "GET", "/v1/tasks", { token: TOKENS.bob })).body as { tasks: { id: string }[] };
    expect(bobList.tasks.map((t) => t.id)).not.toContain(task.id);
    expect((await request(server.url, "GET", `/v1/tasks/${task.id}`, { token: TOKENS.admin })).status).toBe(200);
    expect(await engine.adapter.cancelTask(task.id)).toBe(true);
  });

  it("delegates /v1/audit to the audit dependency, admins only", async () => {
    const answer = await request(server.url, "GET", "/v1/audit?action=task.submit&startDate=2026-01-01T00:00:00Z", { token: TOKENS.admin });
    expect(answer).toMatchObject({ status: 200, body: { entries: [{ action: "task.submit" }] } });
    expect(audited.at(-1)).toMatchObject({ action: "task.submit", startDate: new Date("2026-01-01T00:00:00Z") });
    expectError(await request(server.url, "GET", "/v1/audit", { token: TOKENS.alice }), 403, "PERMISSION_DENIED");
    expect(expectError(await request(server.url, "GET", "/v1/audit?result=maybe", { token: TOKENS.admin }), 400, "INVALID_INPUT").field).toBe("result");
  });
});

describe("HTTP server configuration", () => {
  it("drops clients that stall mid-headers or mid-body, and keeps serving", async () => {
    const engine = await openEngine();
    // Tight limits so the test need not wait long; the defaults are 60 s and 30 s.
    const server = await startServer(engine.adapter, { connectionTimeoutMs: 400, requestTimeoutMs: 1_000 });
    const stall = (bytes: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(server.port, "127.0.0.1", () => socket.write(bytes));
        let received = "";
        socket.setEncoding("utf8");
        socket.on("data", (d: string) => (received += d));
        socket.on("close", () => resolve(received));
        socket.on("error", reject);
      });
    const [midHeaders, midBody] = await Promise.all([
      stall("GET /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor"),
      stall(`POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKENS.alice}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"desc`),
    ]);
    // Node answers a request it never finished receiving with 408 or simply closes; either way the socket is gone.
    expect(midHeaders === "" || midHeaders.startsWith("HTTP/1.1 408")).toBe(true);
    expect(midBody === "" || midBody.startsWith("HTTP/1.1 408")).toBe(true);
    expect((await request(server.url, "GET", "/healthz")).status).toBe(200);
    await server.close();
    await engine.close();
  });

  it("speaks HTTPS with the certificate and key runtime.yaml names", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coderclaw-tls-"));
    try {
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
      ], { stdio: "ignore" });
      const cert = readFileSync(join(dir, "cert.pem"));
      mkdirSync(join(dir, ".coderClaw"));
      writeFileSync(join(dir, ".coderClaw", "runtime.yaml"), "mode: remote-enabled\nhttp:\n  port: 0\n  tls:\n    cert: ../cert.pem\n    key: ../key.pem\n");
      const { config } = loadRuntimeConfig({ cwd: dir, env: {} });
      expect(() => httpListenOptions({ ...config.http, tls: { cert: join(dir, "missing.pem"), key: "k" } })).toThrow(/http\.tls\.cert: cannot read .*missing\.pem/);
      const engine = await openEngine();
      const server = await startServer(engine.adapter, httpListenOptions(config.http));
      try {
        expect(server.url).toMatch(/^https:\/\//);
        const body = await new Promise<string>((resolve, reject) => {
          https
            .get(`${server.url}/v1/status`, { ca: cert, headers: { authorization: `Bearer ${TOKENS.alice}` } }, (res) => {
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (d: string) => (text += d));
              res.on("end", () => resolve(text));
            })
            .on("error", reject);
        });
        expect(JSON.parse(body)).toMatchObject({ healthy: true });
      } finally {
        await server.close();
        await engine.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("tells authenticate where the request came from, and filters listings with canReadTask", async () => {
    const engine = await openEngine();
    const seen: { remoteAddress: string; secure: boolean; userAgent?: string }[] = [];
    const server = await startServer(engine.adapter, {
      authenticate: (token, info) => {
        seen.push(info);
        return authenticate(token);
      },
      canReadTask: (_ctx, task) => ({ allowed: task.agentId !== "manual" }),
    });
    try {
      const hidden = { id: await engine.startManual() };
      const shown = await engine.adapter.submitTask({ description: "d", input: "i", agentId: "echo", sessionId: "s-alice" });
      const listed = await request(server.url, "GET", "/v1/tasks", { token: TOKENS.alice, headers: { "user-agent": "ci/1" } });
      expect((listed.body as { tasks: { id: string }[] }).tasks.map((t) => t.id)).toEqual([shown.id]);
      expect((await request(server.url, "GET", `/v1/tasks/${hidden.id}`, { token: TOKENS.alice })).status).toBe(200);
      expect(seen[0]).toEqual({ remoteAddress: "127.0.0.1", secure: false, userAgent: "ci/1" });
      await engine.adapter.cancelTask(hidden.id);
    } finally {
      await server.close();
      await engine.close();
    }
  });

  it("fails to start with an error naming the address when the port is taken", async () => {
    const engine = await openEngine();
    const first = await startServer(engine.adapter);
    try {
      await expect(startServer(engine.adapter, { port: first.port })).rejects.toThrow(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`));
      expect((await request(first.url, "GET", "/healthz")).status).toBe(200);
    } finally {
      await first.close();
      await engine.close();
    }
  });

  it("refuses a session's event streams beyond its share with 503, while another session's are served", async () => {
    const engine = await openEngine();
    const server = await startServer(engine.adapter, { maxSseStreamsPerSession: 1 });
    const open: AbortController[] = [];
    const follow = async (taskId: string, token: string): Promise<number> => {
      const stop = new AbortController();
      open.push(stop);
      return (await fetch(`${server.url}/v1/tasks/${taskId}/events`, { headers: { authorization: `Bearer ${token}` }, signal: stop.signal })).status;
    };
    try {
      const alices = await engine.startManual("s-alice");
      const bobs = await engine.startManual("s-bob");
      expect(await follow(alices, TOKENS.alice)).toBe(200);
      expect(expectError(await request(server.url, "GET", `/v1/tasks/${alices}/events`, { token: TOKENS.alice }), 503, "UNAVAILABLE").message).toMatch(/this session has 1 event streams open/);
      expect(await follow(bobs, TOKENS.bob)).toBe(200);
      // Its stream closed, the session may open another.
      open.shift()!.abort();
      await eventually(async () => server.sseStreams() === 1);
      expect(await follow(alices, TOKENS.alice)).toBe(200);
    } finally {
      for (const stop of open) stop.abort();
      await server.close();
      await engine.close();
    }
  });

  it("refuses event streams beyond maxSseStreams with 503 and a JSON body", async () => {
    const engine = await openEngine();
    const server = await startServer(engine.adapter, { maxSseStreams: 0 });
    try {
      const task = await engine.adapter.submitTask({ description: "d", input: "i", agentId: "echo", sessionId: "s-alice" });
      expectError(await request(server.url, "GET", `/v1/tasks/${task.id}/events`, { token: TOKENS.alice }), 503, "UNAVAILABLE");
    } finally {
      await server.close();
      await engine.close();
    }
  });
});
