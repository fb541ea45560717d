import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ExecutionFailedError } from "../../src/agents/errors.js";
import { LlmProvider, NO_PROVIDER_REASON, createLlmAgent, resolveLlmProvider } from "../../src/agents/llm.js";
import { LLM_ROLES } from "../../src/agents/roles.js";
import { hasCode } from "../../src/contract/errors.js";
import { makeContext, waitFor } from "./helpers.js";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

/** A small OpenAI-compatible server on loopback: the one stand-in, for the external provider. */
let server: Server;
let baseUrl: string;
let handler: Handler;
let modelsHits = 0;
let modelsStatus = 200;
let lastRequest: { headers: IncomingMessage["headers"]; body: string } | undefined;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      if (req.method === "GET" && req.url === "/v1/models") {
        modelsHits++;
        res.writeHead(modelsStatus, { "content-type": "application/json" }).end(JSON.stringify({ data: [{ id: "test-model" }] }));
        return;
      }
      lastRequest = { headers: req.headers, body };
      handler(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  modelsHits = 0;
  modelsStatus = 200;
  lastRequest = undefined;
});

const sse = (res: ServerResponse): ServerResponse => res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
const chunk = (content: string, finish: string | null = null): string =>
  `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`;

function reviewer(apiKey?: string) {
  const role = LLM_ROLES.find((r) => r.id === "code-reviewer");
  if (role === undefined) throw new Error("missing role");
  const provider = new LlmProvider({ baseUrl, model: "test-model", ...(apiKey === undefined ? {} : { apiKey }) });
  return { role, provider, agent: createLlmAgent(role, provider) };
}

describe("LLM agents over an OpenAI-compatible API", () => {
  it("has the seven roles, each with its own prompt and capabilities", () => {
    expect(LLM_ROLES.map((r) => r.id)).toEqual([
      "code-creator",
      "code-reviewer",
      "test-generator",
      "bug-analyzer",
      "refactor-agent",
      "documentation-agent",
      "architecture-advisor",
    ]);
    expect(new Set(LLM_ROLES.map((r) => r.systemPrompt)).size).toBe(7);
    for (const role of LLM_ROLES) expect(role.capabilities.length).toBeGreaterThan(0);
  });

  it("takes provider settings from the environment over the file, and none without base URL and model", () => {
    expect(resolveLlmProvider(undefined, {})).toBeUndefined();
    expect(resolveLlmProvider({ baseUrl: "http://127.0.0.1:1/v1" }, {})).toBeUndefined();
    expect(
      resolveLlmProvider({ baseUrl: "http://127.0.0.1:1/v1", model: "file-model", apiKeyEnv: "MY_KEY" }, { MY_KEY: "k1", CODERCLAW_LLM_MODEL: "env-model" }),
    ).toEqual({ baseUrl: "http://127.0.0.1:1/v1", model: "env-model", apiKey: "k1" });
    expect(
      resolveLlmProvider(undefined, { CODERCLAW_LLM_BASE_URL: "http://127.0.0.1:2", CODERCLAW_LLM_MODEL: "m", CODERCLAW_LLM_API_KEY: "k2" }),
    ).toEqual({ baseUrl: "http://127.0.0.1:2", model: "m", apiKey: "k2" });
    let err: unknown;
    try {
      resolveLlmProvider(undefined, { CODERCLAW_LLM_BASE_URL: "not a url", CODERCLAW_LLM_MODEL: "m" });
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, "CONFIG")).toBe(true);
    expect((err as Error).message).toContain("CODERCLAW_LLM_BASE_URL");
  });

  it("is available only when a provider is configured and answers, probing once per cache period", async () => {
    const none = createLlmAgent(LLM_ROLES[0]!, undefined);
    expect(await none.availability()).toEqual({ available: false, reason: NO_PROVIDER_REASON });
    const { agent } = reviewer();
    const [a, b] = await Promise.all([agent.availability(), agent.availability()]);
    expect(a).toEqual({ available: true });
    expect(b).toEqual({ available: true });
    expect(await agent.availability()).toEqual({ available: true });
    expect(modelsHits).toBe(1);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const dead = createLlmAgent(LLM_ROLES[0]!, new LlmProvider({ baseUrl: `http://127.0.0.1:${deadPort}/v1`, model: "m" }));
    const down = await dead.availability();
    expect(down.available).toBe(false);
    expect(!down.available && down.reason).toContain(`LLM provider at http://127.0.0.1:${deadPort}/v1 is unreachable: ECONNREFUSED`);
  });

  it("notices a provider that comes back once the probe cache expires", async () => {
    modelsStatus = 503;
    const agent = createLlmAgent(LLM_ROLES[0]!, new LlmProvider({ baseUrl, model: "m", probeCacheMs: 50 }));
    expect(await agent.availability()).toEqual({ available: false, reason: `LLM provider at ${baseUrl} answered HTTP 503 to GET /models` });
    modelsStatus = 200;
    expect((await agent.availability()).available).toBe(false);
    await new Promise((r) => setTimeout(r, 80));
    expect(await agent.availability()).toEqual({ available: true });
    expect(modelsHits).toBe(2);
  });

  it("streams tokens as output and progress, with the role's system prompt and the key", async () => {
    handler = (_req, _body, res) => {
      sse(res);
      res.write(": keep-alive comment\n\n");
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }] })}\n\n`);
      res.write(chunk("Looks "));
      setTimeout(() => {
        res.write(chunk("good"));
        res.write(chunk(" to me.", "stop"));
        res.end("data: [DONE]\n\n");
      }, 30);
    };
    const { agent, role } = reviewer("sk-test");
    const ctx = makeContext({ input: "function f() {}", description: "Review f" }, "/tmp");
    const result = await agent.execute(ctx);
    expect(result.output).toBe("Looks good to me.");
    expect(result.data).toEqual({ model: "test-model", finishReason: "stop" });
    expect(ctx.outputs.join("")).toBe("Looks good to me.");
    expect(ctx.outputs.length).toBeGreaterThanOrEqual(2);
    expect(ctx.progressEvents.map((p) => p.progress)).toEqual([0, 10, 100]);
    const sent = JSON.parse(lastRequest?.body ?? "{}") as { model: string; stream: boolean; messages: Array<{ role: string; content: string }> };
    expect(sent.stream).toBe(true);
    expect(sent.model).toBe("test-model");
    expect(sent.messages[0]).toEqual({ role: "system", content: role.systemPrompt });
    expect(sent.messages[1]?.content).toBe("Task: Review f\n\nfunction f() {}");
    expect(lastRequest?.headers["authorization"]).toBe("Bearer sk-test");
  });

  it("uses the request's model and accepts a non-streamed JSON answer", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ choices: [{ message: { role: "assistant", content: "ok" }, finish_reason: "stop" }] }));
    };
    const result = await reviewer().agent.execute(makeContext({ input: "x", model: "other-model" }, "/tmp"));
    expect(result.output).toBe("ok");
    expect((JSON.parse(lastRequest?.body ?? "{}") as { model: string }).model).toBe("other-model");
  });

  it("turns HTTP 401 and 500 into clear task errors", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request_error" } }));
    };
    const unauthorized = await reviewer("bad").agent.execute(makeContext({ input: "x" }, "/tmp")).catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(ExecutionFailedError);
    expect((unauthorized as ExecutionFailedError).httpStatus).toBe(401);
    expect((unauthorized as Error).message).toBe(
      `LLM provider at ${baseUrl} answered HTTP 401 Unauthorized (check CODERCLAW_LLM_API_KEY or llm.apiKeyEnv): Incorrect API key provided`,
    );
    handler = (_req, _body, res) => {
      res.writeHead(500, { "content-type": "text/plain" }).end("upstream exploded");
    };
    const broken = await reviewer().agent.execute(makeContext({ input: "x" }, "/tmp")).catch((e: unknown) => e);
    expect((broken as ExecutionFailedError).httpStatus).toBe(500);
    expect((broken as Error).message).toBe(`LLM provider at ${baseUrl} answered HTTP 500 Internal Server Error: upstream exploded`);
  });

  it("refuses malformed chunks, unexpected shapes, errors mid-stream and truncated streams", async () => {
    const cases: Array<{ body: string; code: string; text: string }> = [
      { body: `${chunk("a")}data: {not json\n\n`, code: "PROTOCOL", text: "chunk 2 is not JSON: {not json" },
      { body: `data: ${JSON.stringify({ choices: "nope" })}\n\n`, code: "PROTOCOL", text: "chunk 1 has an unexpected shape at 'choices'" },
      { body: `${chunk("a")}this is not sse\n\n`, code: "PROTOCOL", text: "unexpected line: this is not sse" },
      { body: chunk("partial"), code: "PROTOCOL", text: "the stream ended before [DONE]" },
      { body: `data: ${JSON.stringify({ error: { message: "model overloaded" } })}\n\n`, code: "EXECUTION_FAILED", text: "model overloaded" },
    ];
    for (const c of cases) {
      handler = (_req, _body, res) => {
        sse(res).end(c.body);
      };
      const ctx = makeContext({ input: "x" }, "/tmp");
      const err = await reviewer().agent.execute(ctx).catch((e: unknown) => e);
      expect(hasCode(err, c.code as "PROTOCOL"), `${c.text}: ${String(err)}`).toBe(true);
      expect((err as Error).message).toContain(c.text);
    }
  });

  it("cancel mid-stream aborts the request: the server sees the connection close", async () => {
    let closed = false;
    handler = (req, _body, res) => {
      sse(res);
      res.write(chunk("first "));
      // Never finishes on its own; only the client going away ends it.
      const timer = setInterval(() => res.write(": still thinking\n\n"), 50);
      res.on("close", () => {
        clearInterval(timer);
        closed = true;
      });
      req.socket.on("close", () => (closed = true));
    };
    const ctx = makeContext({ input: "x" }, "/tmp");
    const running = reviewer().agent.execute(ctx).catch((e: unknown) => e);
    expect(await waitFor(() => ctx.outputs.length > 0, 5_000)).toBe(true);
    expect(ctx.outputs[0]).toBe("first ");
    ctx.controller.abort("user cancelled");
    const err = await running;
    expect(hasCode(err, "CANCELLED")).toBe(true);
    expect((err as Error).message).toContain("user cancelled");
    expect(await waitFor(() => closed, 5_000)).toBe(true);
  });

  it("cancel before the provider answers aborts the request too", async () => {
    let closed = false;
    handler = (req) => {
      // Holds the answer back; only the client going away ends the exchange.
      req.socket.on("close", () => (closed = true));
    };
    const ctx = makeContext({ input: "x" }, "/tmp");
    const running = reviewer().agent.execute(ctx).catch((e: unknown) => e);
    expect(await waitFor(() => lastRequest !== undefined, 5_000)).toBe(true);
    ctx.controller.abort("timeout");
    expect(hasCode(await running, "TIMEOUT")).toBe(true);
    expect(await waitFor(() => closed, 5_000)).toBe(true);
  });
});
