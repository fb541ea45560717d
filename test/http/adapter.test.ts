import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import { HTTPTransportAdapter, parseSse } from "../../src/transport/http-adapter.js";
import type { HttpServer } from "../../node/http/index.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, startServer } from "./helpers.js";
import { decodeBlobFrames } from "../../src/workspace/blob-frames.js";
import { tempDir } from "../helpers/temp-dir.js";

async function rejection(promise: Promise<unknown>): Promise<CoderClawError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CoderClawError);
    return err as CoderClawError;
  }
  throw new Error("expected a rejection");
}

describe("HTTPTransportAdapter against the real server", () => {
  let engine: Engine;
  let server: HttpServer;
  let client: HTTPTransportAdapter;

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter);
    client = new HTTPTransportAdapter({ baseUrl: `${server.url}/`, token: TOKENS.alice });
  });
  afterAll(async () => {
    await client.close();
    await server.close();
    await engine.close();
  });

  it("runs the contract round trip with Dates revived", async () => {
    expect(client.mode).toBe("remote-enabled");
    const task = await client.submitTask({ description: "echo it", input: "hello", agentId: "echo" });
    expect(task.createdAt).toBeInstanceOf(Date);
    const statuses: string[] = [];
    for await (const update of client.streamTaskUpdates(task.id)) statuses.push(update.status);
    expect(statuses).toEqual((await engine.history(task.id)).map((e) => e.status));
    expect(statuses.at(-1)).toBe("completed");
    const done = await client.getTaskState(task.id);
    expect(done).toMatchObject({ id: task.id, status: "completed", output: "hello", sessionId: "s-alice" });
    expect(done?.completedAt).toBeInstanceOf(Date);
    expect((await client.listTasks({ status: "completed", limit: 10 })).map((t) => t.id)).toContain(task.id);
    expect(await client.cancelTask(task.id)).toBe(false);
    const history = await client.getTaskEvents(task.id);
    expect(history).toEqual(await engine.adapter.getTaskEvents(task.id));
    expect(history[0]).toMatchObject({ seq: 1, type: "created", status: "pending" });
    expect(history[0]?.timestamp).toBeInstanceOf(Date);
    expect((await client.listAgents()).map((a) => a.id)).toEqual(["echo", "sleep", "manual"]);
    expect(await client.listSkills()).toEqual([]);
    expect(await client.getStatus()).toMatchObject({ healthy: true });
  });

  it("rethrows server errors with the server's code and field", async () => {
    expect(await client.getTaskState("00000000-0000-4000-8000-000000000000")).toBeNull();
    const invalid = await rejection(client.submitTask({ description: "", input: "x" }));
    expect(invalid).toMatchObject({ code: "INVALID_INPUT", field: "description" });
    expect((await rejection(client.submitTask({ description: "d", input: "x", agentId: "ghost" }))).code).toBe("UNKNOWN_AGENT");
    expect((await rejection(client.cancelTask("00000000-0000-4000-8000-000000000000"))).code).toBe("NOT_FOUND");

    const stranger = new HTTPTransportAdapter({ baseUrl: server.url, token: "tok-forged" });
    expect((await rejection(stranger.listAgents())).code).toBe("UNAUTHENTICATED");
    const reader = new HTTPTransportAdapter({ baseUrl: server.url, token: async () => TOKENS.reader });
    expect((await rejection(reader.submitTask({ description: "d", input: "x" }))).code).toBe("PERMISSION_DENIED");

    const stream = client.streamTaskUpdates("00000000-0000-4000-8000-000000000000")[Symbol.asyncIterator]();
    expect((await rejection(stream.next())).code).toBe("NOT_FOUND");
  });

  it("stops a stream quietly when the caller's signal aborts", async () => {
    const id = await engine.startManual();
    const abort = new AbortController();
    const seen: number[] = [];
    for await (const update of client.streamTaskUpdates(id, { signal: abort.signal })) {
      seen.push(update.seq ?? 0);
      abort.abort();
    }
    expect(seen).toEqual([1]);
    expect(await client.cancelTask(id)).toBe(true);
  });

  it("starts after afterSeq", async () => {
    const task = await client.submitTask({ description: "d", input: "x" });
    const seqs: number[] = [];
    for await (const update of client.streamTaskUpdates(task.id, { afterSeq: 2 })) seqs.push(update.seq ?? 0);
    expect(seqs).toEqual((await engine.history(task.id)).map((e) => e.seq).filter((seq) => (seq ?? 0) > 2));
    expect(seqs.length).toBeGreaterThan(0);
  });
});

describe("HTTPTransportAdapter without a server", () => {
  it("reports an unreachable node as UNAVAILABLE and gives up on streams after its reconnect budget", async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const client = new HTTPTransportAdapter({ baseUrl: url, token: TOKENS.alice, maxReconnects: 2, reconnectDelayMs: 1 });
    expect((await rejection(client.getStatus())).code).toBe("UNAVAILABLE");
    const stream = client.streamTaskUpdates("00000000-0000-4000-8000-000000000000")[Symbol.asyncIterator]();
    const err = await rejection(stream.next());
    expect(err.code).toBe("UNAVAILABLE");
    expect(err.message).toMatch(/after 2 reconnects/);
  });

  it("refuses a base URL that is not http(s)", () => {
    expect(() => new HTTPTransportAdapter({ baseUrl: "ftp://x", token: "t" })).toThrow(/http\(s\)/);
    expect(() => new HTTPTransportAdapter({ baseUrl: "not a url", token: "t" })).toThrow(CoderClawError);
  });
});

describe("HTTPTransportAdapter against a hostile server", () => {
  it("sends a tree's blobs once each, and only those it asked about, whatever the server answers it is missing", async () => {
    const src = tempDir("cc-hostile-server-");
    for (let i = 0; i < 3; i++) writeFileSync(join(src.path, `f${i}.txt`), `${i}`.repeat(10_000));
    const asked = new Set<string>();
    const sent: string[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const answer = (status: number, value: unknown): void => void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
        if (req.url === "/v1/blobs/missing") {
          const { digests } = JSON.parse(body.toString()) as { digests: string[] };
          for (const d of digests) asked.add(d);
          // Every blob fifty times over, and one the client never named.
          return answer(200, { missing: [...Array.from({ length: 50 }, () => digests).flat(), "ab".repeat(32)] });
        }
        if (req.url === "/v1/blobs") {
          for (const [digest] of decodeBlobFrames(body)) sent.push(digest);
          return answer(200, { stored: 0 });
        }
        if (req.url?.startsWith("/v1/trees/") === true) return answer(200, {});
        return answer(400, { error: { code: "INVALID_INPUT", message: "no task here" } });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = new HTTPTransportAdapter({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: "t" });
    try {
      await expect(client.submitTask({ description: "d", input: "" }, { repo: src.path })).rejects.toMatchObject({ message: "no task here" });
      expect(asked.size).toBeGreaterThan(3);
      expect(sent.toSorted()).toEqual([...asked].toSorted());
    } finally {
      await client.close();
      server.close();
      src.remove();
    }
  });
});

describe("parseSse", () => {
  it("handles CRLF, CR and LF line ends, split chunks, multi-line data and comments", async () => {
    const chunks = ["id: 1\r\nevent: update\r\ndata: {\"a\":", "1}\r\n\r", "\n: heartbeat\n\nevent: x\rdata: one\rdata: two\r\r", "data: last\n\n"];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
        controller.close();
      },
    });
    const messages = [];
    for await (const message of parseSse(body)) messages.push(message);
    expect(messages).toEqual([
      { event: "update", data: '{"a":1}', id: "1" },
      { event: "x", data: "one\ntwo", id: "1" },
      { event: "message", data: "last", id: "1" },
    ]);
  });
});
