import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskUpdateEvent, TransportAdapter } from "../../src/contract/types.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import type { HttpServer } from "../../node/http/index.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { ExecutionController } from "../helpers/controlled-agent.js";
import { tempDir } from "../helpers/temp-dir.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, eventually, openSse, startRelay, startServer } from "./helpers.js";

/** What a subscriber must have seen: the engine's own history, field for field. */
const view = (events: TaskUpdateEvent[]): unknown[] => events.map((e) => [e.seq, e.status, e.progress, e.message, e.timestamp.toISOString()]);

describe("task event streams over SSE", () => {
  let engine: Engine;
  let server: HttpServer;

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter, { sseHeartbeatMs: 50 });
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("delivers every update to 100 concurrent subscribers, then ends each stream", async () => {
    const id = await engine.startManual();
    const client = new HTTPTransportAdapter({ baseUrl: server.url, token: TOKENS.alice });
    const received: TaskUpdateEvent[][] = Array.from({ length: 100 }, () => []);
    const subscribers = received.map(async (events) => {
      for await (const update of client.streamTaskUpdates(id)) events.push(update);
    });
    await eventually(() => server.sseStreams() === 100);
    for (let p = 5; p <= 100; p += 5) engine.controller.progress(id, p);
    engine.controller.complete(id, "all done");
    await Promise.all(subscribers);
    const expected = view(await engine.history(id));
    expect(expected.length).toBeGreaterThan(20);
    for (const events of received) expect(view(events)).toEqual(expected);
    expect(received[0]?.at(-1)).toMatchObject({ taskId: id, status: "completed" });
    await eventually(() => server.sseStreams() === 0);
    await client.close();
  });

  it("resumes a raw subscriber from Last-Event-ID and ?after= with nothing missed or repeated", async () => {
    const id = await engine.startManual();
    for (let p = 1; p <= 3; p += 1) engine.controller.progress(id, p);
    const first = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice);
    await first.next(4);
    first.cut();
    await first.ended;
    const firstLast = first.frames.at(-1)?.id ?? "";

    // Updates made while nobody listens.
    for (let p = 4; p <= 8; p += 1) engine.controller.progress(id, p);
    const second = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice, { "last-event-id": firstLast });
    await second.next(2);
    second.cut();
    await second.ended;
    const secondLast = second.frames.at(-1)?.id ?? "";

    for (let p = 9; p <= 12; p += 1) engine.controller.progress(id, p);
    engine.controller.complete(id);
    const third = openSse(server.url, `/v1/tasks/${id}/events?after=${secondLast}`, TOKENS.alice);
    expect(await third.ended).toBe(200);
    expect(third.frames.at(-1)?.event).toBe("end");

    const updates = [...first.frames, ...second.frames, ...third.frames].filter((f) => f.event === "update");
    const expected = (await engine.history(id)).map((e) => e.seq);
    expect(updates.map((f) => Number(f.id))).toEqual(expected);
    expect(updates.map((f) => (JSON.parse(f.data) as { seq: number }).seq)).toEqual(expected);
    await eventually(() => server.sseStreams() === 0);
  });

  it("replays the full history of a task that already ended, then sends end", async () => {
    const task = await engine.adapter.submitTask({ description: "echo", input: "again", agentId: "echo", sessionId: "s-alice" });
    const expected = (await engine.history(task.id)).map((e) => String(e.seq));
    const stream = openSse(server.url, `/v1/tasks/${task.id}/events`, TOKENS.alice);
    await stream.ended;
    expect(stream.frames.filter((f) => f.event === "update").map((f) => f.id)).toEqual(expected);
    expect(stream.frames.at(-1)).toMatchObject({ event: "end" });
  });

  it("sends heartbeat comments while idle and frees the stream when the client leaves", async () => {
    const id = await engine.startManual();
    const chunks: string[] = [];
    const req = http.get(`${server.url}/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${TOKENS.alice}` }, agent: false });
    const response = await new Promise<http.IncomingMessage>((resolve) => req.on("response", resolve));
    expect(response.headers["content-type"]).toMatch(/^text\/event-stream/);
    response.setEncoding("utf8");
    response.on("data", (d: string) => chunks.push(d));
    await eventually(() => chunks.join("").includes(": heartbeat\n\n"));
    expect(server.sseStreams()).toBe(1);
    req.destroy();
    await eventually(() => server.sseStreams() === 0);
    await engine.adapter.cancelTask(id);
  });

  it("stops pulling updates while a subscriber does not read, then delivers them all in order", async () => {
    const total = 4000;
    const filler = "x".repeat(8 * 1024);
    let pulled = 0;
    const task = await engine.adapter.submitTask({ description: "echo", input: "x", agentId: "echo", sessionId: "s-alice" });
    const local = engine.adapter;
    // The real engine for everything but the stream, which is a flood far larger than any socket buffer.
    const flooding: TransportAdapter = {
      submitTask: (r) => local.submitTask(r),
      getTaskState: (id) => local.getTaskState(id),
      cancelTask: (id) => local.cancelTask(id),
      listTasks: (f) => local.listTasks(f),
      listAgents: () => local.listAgents(),
      listSkills: () => local.listSkills(),
      getStatus: () => local.getStatus(),
      close: async () => undefined,
      async *streamTaskUpdates(taskId) {
        for (let seq = 1; seq <= total; seq += 1) {
          pulled += 1;
          yield { taskId, status: seq === total ? "completed" : "running", timestamp: new Date(), message: filler, seq };
        }
      },
    };
    const floodServer = await startServer(flooding);
    try {
      const req = http.get(`${floodServer.url}/v1/tasks/${task.id}/events`, { headers: { authorization: `Bearer ${TOKENS.alice}` }, agent: false });
      const response = await new Promise<http.IncomingMessage>((resolve) => req.on("response", resolve));
      response.pause();
      // Wait for the producer to stall: the same count on three polls in a row.
      let last = -1;
      let steady = 0;
      for (let i = 0; i < 400 && steady < 3; i += 1) {
        await new Promise((r) => setTimeout(r, 50));
        steady = pulled === last ? steady + 1 : 0;
        last = pulled;
      }
      expect(steady).toBe(3);
      expect(pulled).toBeLessThan(total / 2);

      let text = "";
      response.setEncoding("utf8");
      response.on("data", (d: string) => (text += d));
      response.resume();
      await new Promise((resolve) => response.on("end", resolve));
      const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
      expect(ids).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(text.endsWith("event: end\ndata: {}\n\n")).toBe(true);
    } finally {
      await floodServer.close();
    }
  });

  it("refuses a bad resume position with 400 before opening a stream", async () => {
    const task = await engine.adapter.submitTask({ description: "echo", input: "x", agentId: "echo", sessionId: "s-alice" });
    const stream = openSse(server.url, `/v1/tasks/${task.id}/events`, TOKENS.alice, { "last-event-id": "yesterday" });
    expect(await stream.ended).toBe(400);
  });
});

describe("HTTPTransportAdapter resumes dropped streams", () => {
  it("reconnects through a cut connection with Last-Event-ID and misses nothing", async () => {
    const engine = await openEngine();
    const server = await startServer(engine.adapter, { sseHeartbeatMs: 50 });
    const relay = await startRelay(server.port);
    const client = new HTTPTransportAdapter({ baseUrl: relay.url, token: TOKENS.alice, reconnectDelayMs: 10 });
    try {
      const id = await engine.startManual();
      const received: TaskUpdateEvent[] = [];
      let cut = false;
      const consumer = (async () => {
        for await (const update of client.streamTaskUpdates(id)) {
          received.push(update);
          if (update.progress === 10 && !cut) {
            cut = true;
            relay.cutAll();
            // Updates made while the client is away must still reach it.
            for (let p = 20; p <= 24; p += 1) engine.controller.progress(id, p);
          }
        }
      })();
      engine.controller.progress(id, 10);
      await eventually(() => received.some((u) => u.progress === 24));
      engine.controller.complete(id);
      await consumer;
      expect(view(received)).toEqual(view(await engine.history(id)));
      const resumes = relay.seen.filter((head) => head.includes("/events") && /last-event-id: \d+/i.test(head));
      expect(resumes.length).toBeGreaterThanOrEqual(1);
    } finally {
      await client.close();
      await relay.close();
      await server.close();
      await engine.close();
    }
  });

  it("follows a task across a restart of the node on the same port, missing nothing", async () => {
    const dir = tempDir("cc-http-restart-");
    const controller = new ExecutionController();
    const open = (): Promise<LocalTransportAdapter> =>
      LocalTransportAdapter.open({ dataDir: dir.path, agents: createBuiltinRegistry([controller.agent("manual", true)]), shutdownGraceMs: 50 });
    let local = await open();
    let server = await startServer(local);
    const port = server.port;
    const client = new HTTPTransportAdapter({ baseUrl: server.url, token: TOKENS.alice, reconnectDelayMs: 20, maxReconnects: 100 });
    try {
      const id = (await local.submitTask({ description: "long", input: "", agentId: "manual", sessionId: "s-alice" })).id;
      await eventually(() => controller.isExecuting(id));
      const received: TaskUpdateEvent[] = [];
      const consumer = (async () => {
        for await (const update of client.streamTaskUpdates(id)) received.push(update);
      })();
      controller.progress(id, 30);
      await eventually(() => received.some((u) => u.progress === 30));

      // The node goes down mid-task; the resumable task survives in storage.
      await server.close();
      await local.close();
      controller.reset();
      local = await open();
      server = await startServer(local, { port });
      await eventually(() => controller.isExecuting(id), 500);
      controller.progress(id, 60);
      controller.complete(id, "finished after restart");
      await consumer;

      const history = [];
      for await (const event of local.streamTaskUpdates(id)) history.push(event);
      expect(view(received)).toEqual(view(history));
      expect(received.at(-1)).toMatchObject({ status: "completed" });
    } finally {
      await client.close();
      await server.close();
      await local.close();
      dir.remove();
    }
  });

  it("ends open streams when the server closes, without waiting for their tasks", async () => {
    const engine = await openEngine();
    const server = await startServer(engine.adapter);
    try {
      const id = await engine.startManual();
      const stream = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice);
      await stream.next(1);
      await server.close();
      expect(await stream.ended).toBe(200);
      expect(stream.frames.some((f) => f.event === "end")).toBe(false);
      await engine.adapter.cancelTask(id);
    } finally {
      await engine.close();
    }
  });
});
