import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import type { HttpServer } from "../../node/http/index.js";
import { FixtureAdapter } from "./fixture-adapter.js";
import { TOKENS, eventually, openSse, startRelay, startServer } from "./helpers.js";

const STEPS = 20;

describe("task event streams over SSE", () => {
  let adapter: FixtureAdapter;
  let server: HttpServer;

  beforeAll(async () => {
    adapter = new FixtureAdapter();
    server = await startServer(adapter, { sseHeartbeatMs: 50 });
  });
  afterAll(async () => {
    await server.close();
    await adapter.close();
  });

  const manualTask = async (): Promise<string> =>
    (await adapter.submitTask({ description: "driven", input: "", agentId: "manual", sessionId: "s-alice" })).id;

  /** planning, running, STEPS progress updates, completed: every task's history is seq 1..STEPS+4. */
  const drive = (id: string, from = 0, to = STEPS): void => {
    if (from === 0) {
      adapter.update(id, "planning");
      adapter.update(id, "running");
    }
    for (let i = from + 1; i <= to; i += 1) adapter.update(id, "running", { progress: Math.round((i / STEPS) * 100), message: `step ${i}` });
    if (to === STEPS) adapter.update(id, "completed", { output: "done" });
  };
  const allSeqs = Array.from({ length: STEPS + 4 }, (_, i) => i + 1);

  it("delivers every update to 100 concurrent subscribers, then ends each stream", async () => {
    const id = await manualTask();
    const client = new HTTPTransportAdapter({ baseUrl: server.url, token: TOKENS.alice });
    const received: TaskUpdateEvent[][] = Array.from({ length: 100 }, () => []);
    const subscribers = received.map(async (events) => {
      for await (const update of client.streamTaskUpdates(id)) events.push(update);
    });
    await eventually(() => server.sseStreams() === 100);
    drive(id);
    await Promise.all(subscribers);
    for (const events of received) {
      expect(events.map((e) => e.seq)).toEqual(allSeqs);
      expect(events.at(-1)).toMatchObject({ taskId: id, status: "completed" });
      expect(events[5]?.timestamp).toBeInstanceOf(Date);
    }
    await eventually(() => server.sseStreams() === 0);
    await client.close();
  });

  it("resumes a raw subscriber from Last-Event-ID and ?after= with nothing missed or repeated", async () => {
    const id = await manualTask();
    drive(id, 0, 5);
    const first = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice);
    await first.next(4);
    first.cut();
    await first.ended;
    const lastId = first.frames.at(-1)?.id ?? "";
    expect(Number(lastId)).toBeGreaterThanOrEqual(4);

    drive(id, 5, 12);
    const second = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice, { "last-event-id": lastId });
    await second.next(10 - Number(lastId) + 2);
    second.cut();
    await second.ended;
    const secondLast = second.frames.at(-1)?.id ?? "";

    drive(id, 12, STEPS);
    const third = openSse(server.url, `/v1/tasks/${id}/events?after=${secondLast}`, TOKENS.alice);
    expect(await third.ended).toBe(200);

    const updates = [...first.frames, ...second.frames, ...third.frames].filter((f) => f.event === "update");
    expect(updates.map((f) => Number(f.id))).toEqual(allSeqs);
    expect(updates.map((f) => (JSON.parse(f.data) as { seq: number }).seq)).toEqual(allSeqs);
    expect(third.frames.at(-1)?.event).toBe("end");
    await eventually(() => server.sseStreams() === 0);
  });

  it("replays the full history of a task that already ended, then sends end", async () => {
    const id = await manualTask();
    drive(id);
    const stream = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice);
    await stream.ended;
    expect(stream.frames.filter((f) => f.event === "update").map((f) => Number(f.id))).toEqual(allSeqs);
    expect(stream.frames.at(-1)).toMatchObject({ event: "end" });
  });

  it("sends heartbeat comments while idle and frees the stream when the client leaves", async () => {
    const id = await manualTask();
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
    adapter.update(id, "cancelled");
  });

  it("refuses a bad resume position with 400 before opening a stream", async () => {
    const id = await manualTask();
    const stream = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice, { "last-event-id": "yesterday" });
    expect(await stream.ended).toBe(400);
    adapter.update(id, "cancelled");
  });
});

describe("HTTPTransportAdapter resumes dropped streams", () => {
  it("reconnects through a cut connection with Last-Event-ID and misses nothing", async () => {
    const adapter = new FixtureAdapter();
    const server = await startServer(adapter, { sseHeartbeatMs: 50 });
    const relay = await startRelay(server.port);
    const client = new HTTPTransportAdapter({ baseUrl: relay.url, token: TOKENS.alice, reconnectDelayMs: 10 });
    try {
      const id = (await adapter.submitTask({ description: "d", input: "", agentId: "manual", sessionId: "s-alice" })).id;
      const seqs: number[] = [];
      let cut = false;
      const consumer = (async () => {
        for await (const update of client.streamTaskUpdates(id)) {
          seqs.push(update.seq ?? -1);
          if (update.seq === 6 && !cut) {
            cut = true;
            relay.cutAll();
            // Updates made while the client is away must still reach it.
            for (let i = 0; i < 5; i += 1) adapter.update(id, "running", { progress: 50 + i });
          }
        }
      })();
      adapter.update(id, "planning");
      adapter.update(id, "running");
      for (let i = 0; i < 4; i += 1) adapter.update(id, "running", { progress: i * 10 });
      await eventually(() => seqs.length >= 12);
      adapter.update(id, "completed", { output: "ok" });
      await consumer;
      expect(seqs).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
      expect(relay.seen.filter((head) => head.includes("/events")).length).toBeGreaterThanOrEqual(2);
      // The resume position is the last update the client had parsed when the socket died (6, or 7 if already buffered).
      const resumedFrom = relay.seen.map((head) => /last-event-id: (\d+)/i.exec(head)?.[1]).find((v) => v !== undefined);
      expect(Number(resumedFrom)).toBeGreaterThanOrEqual(6);
    } finally {
      await client.close();
      await relay.close();
      await server.close();
    }
  });

  it("ends open streams when the server closes, without waiting for their tasks", async () => {
    const adapter = new FixtureAdapter();
    const server = await startServer(adapter);
    const id = (await adapter.submitTask({ description: "d", input: "", agentId: "manual", sessionId: "s-alice" })).id;
    const stream = openSse(server.url, `/v1/tasks/${id}/events`, TOKENS.alice);
    await stream.next(1);
    await server.close();
    expect(await stream.ended).toBe(200);
    expect(stream.frames.some((f) => f.event === "end")).toBe(false);
  });
});
