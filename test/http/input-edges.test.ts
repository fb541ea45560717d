import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, request, type RawAnswer } from "./helpers.js";

/** JSON of objects nested `depth` deep, built as text: JSON.stringify itself would overflow. */
function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}"leaf"${"}".repeat(depth)}`;
}

function errorOf(answer: RawAnswer): { code: string; message: string; field?: string } {
  return (answer.body as { error: { code: string; message: string; field?: string } }).error;
}

describe("HTTP edges refuse bodies they cannot take, with the status the docs give", () => {
  let engine: Engine;
  let server: HttpServer;
  beforeAll(async () => {
    engine = await openEngine();
    const { startServer } = await import("./helpers.js");
    server = await startServer(engine.adapter);
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("answers 415 naming the content type for a non-JSON body on every JSON endpoint", async () => {
    for (const path of ["/v1/tasks", "/v1/tasks/00000000-0000-4000-8000-000000000000/cancel"]) {
      for (const type of ["text/plain", "text/plain; charset=utf-8", "application/octet-stream"]) {
        const answer = await request(server.url, "POST", path, { token: TOKENS.alice, body: '{"description":"x","input":"x"}', headers: { "content-type": type } });
        expect(answer.status, `${path} ${type}: ${JSON.stringify(answer.body)}`).toBe(415);
        expect(errorOf(answer).code).toBe("INVALID_INPUT");
        expect(errorOf(answer).message).toContain("application/json");
        expect(errorOf(answer).message).toContain(type.split(";")[0]);
      }
    }
  });

  it("answers 400 naming metadata and the depth limit for metadata nested 5,000 deep", async () => {
    const body = `{"description":"deep","input":"x","agentId":"echo","metadata":{"deep":${nested(5000)}}}`;
    const answer = await request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body });
    expect(answer.status, JSON.stringify(answer.body)).toBe(400);
    expect(errorOf(answer)).toMatchObject({ code: "INVALID_INPUT", field: "metadata" });
    expect(errorOf(answer).message).toMatch(/nested deeper than 32/);
    const ok = await request(server.url, "POST", "/v1/tasks", { token: TOKENS.alice, body: `{"description":"ok","input":"x","agentId":"echo","metadata":{"deep":${nested(30)}}}` });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
  });
});
