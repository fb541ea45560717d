import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import { CHUNK_SIZE } from "../../src/workspace/manifest.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, startServer } from "./helpers.js";

/** What a client on one keep-alive connection reads back for `requests`, sent one after another. */
async function onOneConnection(port: number, requests: string[]): Promise<string> {
  const socket = net.connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (d: Buffer) => chunks.push(d));
  const closed = new Promise((resolve) => socket.once("close", resolve));
  for (const request of requests) {
    socket.write(request);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 300))]);
  }
  socket.end();
  await closed;
  return Buffer.concat(chunks).toString("latin1");
}

/**
 * A task's patch and artifacts are sent with the length their result's
 * manifest states, a blob at a time. A result made by a hostile executor
 * can name a blob of another length (its digest still matches its bytes): the
 * body must not run past that length, where the client would read the rest as
 * the answer to its next request on the connection.
 */
describe("patch bytes that do not match their manifest", () => {
  const smuggled = "HTTP/1.1 200 OK\r\ncontent-type: text/javascript\r\ncontent-length: 8\r\n\r\nalert(1)";
  const blobs = new Map<string, Buffer>([
    ["a".repeat(64), Buffer.from(`diff${smuggled}`)],
    ["b".repeat(64), Buffer.alloc(CHUNK_SIZE, 0x61)],
    ["c".repeat(64), Buffer.from(`tail${smuggled}`)],
  ]);
  let patch = { kind: "patch" as const, path: "changes.patch", size: 4, chunks: ["a".repeat(64)] };
  let engine: Engine;
  let server: HttpServer;
  let taskId: string;

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter, { changes: async () => ({ files: [patch], read: async (digest) => blobs.get(digest)! }) });
    taskId = (await engine.adapter.submitTask({ description: "x", input: "y", agentId: "echo", sessionId: "s-alice" })).id;
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  const get = (path: string, token?: string): string => `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${token === undefined ? "" : `authorization: Bearer ${token}\r\n`}\r\n`;

  it("refuses a first blob of another length before the answer starts, and nothing follows it on the connection", async () => {
    patch = { kind: "patch", path: "changes.patch", size: 4, chunks: ["a".repeat(64)] };
    const read = await onOneConnection(server.port, [get(`/v1/tasks/${taskId}/patch`, TOKENS.alice), get("/healthz")]);
    expect(read).toMatch(/^HTTP\/1.1 502 /);
    expect(read).not.toContain("alert(1)");
    expect(read).toContain('{"ok":true}');
  });

  it("cuts the connection at a later blob of another length, never sending past the stated length", async () => {
    patch = { kind: "patch", path: "changes.patch", size: CHUNK_SIZE + 4, chunks: ["b".repeat(64), "c".repeat(64)] };
    const read = await onOneConnection(server.port, [get(`/v1/tasks/${taskId}/patch`, TOKENS.alice), get("/healthz")]);
    expect(read).toMatch(/^HTTP\/1.1 200 /);
    expect(read).not.toContain("alert(1)");
    expect(read).not.toContain('{"ok":true}');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});
