import { z } from "zod";
import type { LlmFileConfig } from "../config/agents-config.js";
import { CoderClawError } from "../contract/errors.js";
import type { AgentExecutor, Availability, ExecutionContext, ExecutionResult } from "./executor.js";
import { ExecutionFailedError, abortError } from "./errors.js";
import type { LlmRole } from "./roles.js";
import { readSse } from "../util/sse-reader.js";

/** Environment variables that configure the LLM provider; they override the config file. */
export const LLM_ENV = {
  baseUrl: "CODERCLAW_LLM_BASE_URL",
  model: "CODERCLAW_LLM_MODEL",
  apiKey: "CODERCLAW_LLM_API_KEY",
} as const;

/** Default wait for the provider's `GET /models` answer. */
export const DEFAULT_PROBE_TIMEOUT_MS = 2_000;
/** How long a probe result is trusted before the provider is asked again. */
export const DEFAULT_PROBE_CACHE_MS = 30_000;
/** How long a failed probe is trusted, at most. */
export const FAILED_PROBE_CACHE_MS = 5_000;
/** Default per-task timeout of LLM agents: 10 minutes. */
export const DEFAULT_LLM_TIMEOUT_MS = 10 * 60 * 1000;
/** Longest single SSE line accepted from a provider. */
export const MAX_SSE_LINE_BYTES = 1024 * 1024;
/** Most generated text kept from one answer. */
export const MAX_COMPLETION_BYTES = 8 * 1024 * 1024;
/** Most bytes of an error body quoted in a task error. */
const MAX_ERROR_BODY_BYTES = 4 * 1024;

/** A usable provider: where, which model, with which key. */
export interface LlmProviderConfig {
  /** Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:11434/v1`. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  probeTimeoutMs?: number;
  probeCacheMs?: number;
}

const baseUrlSchema = z.url({ protocol: /^https?$/ }).max(2048);

/**
 * The provider settings in force: each of base URL, model and key comes from
 * its `CODERCLAW_LLM_*` variable when set, else from the file's `llm:` section
 * (the key also from the variable named by `apiKeyEnv`). Undefined when base
 * URL or model is missing. A malformed base URL in the environment is a CONFIG
 * error naming the variable.
 */
export function resolveLlmProvider(
  file: LlmFileConfig | undefined,
  env: Readonly<Record<string, string | undefined>>,
): LlmProviderConfig | undefined {
  const envBase = env[LLM_ENV.baseUrl];
  if (envBase !== undefined && envBase !== "" && !baseUrlSchema.safeParse(envBase).success) {
    throw new CoderClawError("CONFIG", `${LLM_ENV.baseUrl}: must be an http(s) URL, got '${envBase.slice(0, 100)}'`, { field: LLM_ENV.baseUrl });
  }
  const pick = (fromEnv: string | undefined, fromFile: string | undefined): string | undefined =>
    fromEnv !== undefined && fromEnv !== "" ? fromEnv : fromFile;
  const baseUrl = pick(envBase, file?.baseUrl);
  const model = pick(env[LLM_ENV.model], file?.model);
  if (baseUrl === undefined || model === undefined) return undefined;
  const apiKey = pick(env[LLM_ENV.apiKey], file?.apiKeyEnv === undefined ? file?.apiKey : env[file.apiKeyEnv]);
  return {
    baseUrl,
    model,
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(file?.probeTimeoutMs === undefined ? {} : { probeTimeoutMs: file.probeTimeoutMs }),
  };
}

const chunkSchema = z.object({
  choices: z
    .array(
      z.object({
        delta: z.object({ content: z.string().nullish() }).loose().nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .max(16),
});
const completionSchema = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().nullish() }).loose(), finish_reason: z.string().nullish() })).min(1).max(16),
});
const errorBodySchema = z.object({ error: z.union([z.string(), z.object({ message: z.string() }).loose()]) });

/** A chat message of the chat completions API. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** What one streamed completion produced. */
export interface ChatResult {
  content: string;
  finishReason?: string;
}

/**
 * An OpenAI-compatible chat completions endpoint: availability probe with a
 * cache, and streamed completions with bounded parsing.
 */
export class LlmProvider {
  private probeCache: { at: number; result: Availability } | undefined;
  private probing: Promise<Availability> | undefined;
  private readonly base: string;

  constructor(readonly config: LlmProviderConfig) {
    this.base = config.baseUrl.replace(/\/+$/, "");
  }

  private headers(json: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: json ? "application/json" : "text/event-stream" };
    if (json) headers["content-type"] = "application/json";
    if (this.config.apiKey !== undefined) headers["authorization"] = `Bearer ${this.config.apiKey}`;
    return headers;
  }

  /**
   * Does the provider answer `GET {base}/models` with a 2xx, within the probe
   * timeout? Results are cached so listing agents stays cheap, and concurrent
   * callers share one request.
   */
  availability(): Promise<Availability> {
    const cacheMs = this.config.probeCacheMs ?? DEFAULT_PROBE_CACHE_MS;
    const cached = this.probeCache;
    // A failure is trusted for less time, so a provider that comes up is noticed soon.
    const ttl = cached?.result.available === false ? Math.min(cacheMs, FAILED_PROBE_CACHE_MS) : cacheMs;
    if (cached !== undefined && Date.now() - cached.at < ttl) return Promise.resolve(cached.result);
    this.probing ??= this.probe().then((result) => {
      this.probeCache = { at: Date.now(), result };
      this.probing = undefined;
      return result;
    });
    return this.probing;
  }

  private async probe(): Promise<Availability> {
    const url = `${this.base}/models`;
    const timeoutMs = this.config.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    try {
      const response = await fetch(url, { headers: this.headers(true), signal: AbortSignal.timeout(timeoutMs) });
      // The body is not needed; cancelling it frees the connection at once.
      await response.body?.cancel();
      if (response.ok) return { available: true };
      return { available: false, reason: `LLM provider at ${this.base} answered HTTP ${response.status} to GET /models` };
    } catch (err) {
      const why = err instanceof Error && err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : describeFetchError(err);
      return { available: false, reason: `LLM provider at ${this.base} is unreachable: ${why}` };
    }
  }

  /**
   * Stream a chat completion. `onText` gets the text of each network read as it
   * arrives. Rejects with the signal's typed error on abort (the request is
   * aborted with it), EXECUTION_FAILED on HTTP errors, PROTOCOL on malformed chunks.
   */
  async chat(messages: ChatMessage[], options: { model: string; signal: AbortSignal; onText: (text: string) => void }): Promise<ChatResult> {
    const { signal } = options;
    let response: Response;
    try {
      response = await fetch(`${this.base}/chat/completions`, {
        method: "POST",
        headers: this.headers(false),
        body: JSON.stringify({ model: options.model, messages, stream: true }),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw new ExecutionFailedError(`LLM provider at ${this.base} is unreachable: ${describeFetchError(err)}`, { cause: err });
    }
    try {
      if (!response.ok) throw await httpError(response, this.base);
      const type = response.headers.get("content-type") ?? "";
      if (type.includes("application/json")) return await readJsonCompletion(response, options.onText);
      return await readEventStream(response, options.onText);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw err;
    } finally {
      // On error paths the body may be unread; cancel it so the socket closes.
      await response.body?.cancel().catch(() => undefined);
    }
  }
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? err.message;
}

async function readBounded(response: Response, maxBytes: number): Promise<string> {
  const reader: ReadableStreamDefaultReader<Uint8Array> | undefined = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < maxBytes) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  await reader.cancel().catch(() => undefined);
  return Buffer.concat(chunks).subarray(0, maxBytes).toString("utf8");
}

async function httpError(response: Response, base: string): Promise<ExecutionFailedError> {
  const body = await readBounded(response, MAX_ERROR_BODY_BYTES);
  let detail = body.trim();
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(body));
    if (parsed.success) detail = typeof parsed.data.error === "string" ? parsed.data.error : parsed.data.error.message;
  } catch {
    // Not JSON: quote the text as it is.
  }
  const hint = response.status === 401 || response.status === 403 ? ` (check ${LLM_ENV.apiKey} or llm.apiKeyEnv)` : "";
  return new ExecutionFailedError(
    `LLM provider at ${base} answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}${hint}${detail ? `: ${detail.slice(0, 500)}` : ""}`,
    { httpStatus: response.status },
  );
}

function protocolError(message: string): CoderClawError {
  return new CoderClawError("PROTOCOL", `LLM provider sent a malformed stream: ${message}`);
}

async function readJsonCompletion(response: Response, onText: (text: string) => void): Promise<ChatResult> {
  const body = await readBounded(response, MAX_COMPLETION_BYTES + 1);
  if (Buffer.byteLength(body) > MAX_COMPLETION_BYTES) throw protocolError(`answer over ${MAX_COMPLETION_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw protocolError("answer is not JSON");
  }
  const parsed = completionSchema.safeParse(json);
  if (!parsed.success) throw protocolError(`unexpected completion shape at ${parsed.error.issues[0]?.path.join(".") ?? "?"}`);
  const choice = parsed.data.choices[0];
  const content = choice?.message.content ?? "";
  if (content.length > 0) onText(content);
  return { content, ...(choice?.finish_reason ? { finishReason: choice.finish_reason } : {}) };
}

/**
 * Parse a `text/event-stream` of chat completion chunks: `data:` events carry
 * JSON chunks until `data: [DONE]`; comments and the fields SSE defines are
 * skipped, any other line refused. Every read is bounded (event size, total
 * text), so a provider cannot make us hold unbounded memory.
 */
async function readEventStream(response: Response, onText: (text: string) => void): Promise<ChatResult> {
  if (response.body === null) throw protocolError("empty body");
  let content = "";
  let finishReason: string | undefined;
  let chunkNo = 0;
  const done = (): ChatResult => (finishReason === undefined ? { content } : { content, finishReason });
  // A provider that only sends keep-alive comments forever is stopped by the task's timeout (the signal).
  const events = readSse(response.body, {
    maxEventChars: MAX_SSE_LINE_BYTES,
    error: protocolError,
    onUnknownField: (line) => {
      throw protocolError(`unexpected line: ${line.slice(0, 80)}`);
    },
    // A last event may lack its blank line; it still counts.
    endCompletesEvent: true,
  });
  for await (const { data } of events) {
    if (data.trim() === "[DONE]") return done();
    chunkNo++;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      throw protocolError(`chunk ${chunkNo} is not JSON: ${data.slice(0, 80)}`);
    }
    const error = errorBodySchema.safeParse(json);
    if (error.success) {
      throw new ExecutionFailedError(`LLM provider reported an error mid-stream: ${typeof error.data.error === "string" ? error.data.error : error.data.error.message}`);
    }
    const parsed = chunkSchema.safeParse(json);
    if (!parsed.success) throw protocolError(`chunk ${chunkNo} has an unexpected shape at '${parsed.error.issues[0]?.path.join(".") ?? "?"}'`);
    let text = "";
    for (const choice of parsed.data.choices) {
      if (typeof choice.delta?.content === "string") text += choice.delta.content;
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
    if (text.length === 0) continue;
    content += text;
    if (Buffer.byteLength(content) > MAX_COMPLETION_BYTES) throw protocolError(`answer over ${MAX_COMPLETION_BYTES} bytes`);
    onText(text);
  }
  if (finishReason !== undefined) return done();
  throw protocolError("the stream ended before [DONE]");
}

/** Why LLM agents are unavailable when no provider is configured. */
export const NO_PROVIDER_REASON = `no LLM provider configured: set ${LLM_ENV.baseUrl} and ${LLM_ENV.model}, or the llm: section of .coderClaw/runtime.yaml`;

/**
 * An agent playing one CoderClaw role on the provider: the role's system
 * prompt, then the task's description and input as the user message. Streamed
 * text becomes task output as it arrives. Without a provider the agent is
 * listed as unavailable with the reason.
 */
export function createLlmAgent(role: LlmRole, provider: LlmProvider | undefined, options: { timeoutMs?: number } = {}): AgentExecutor {
  return {
    info: {
      id: role.id,
      name: role.name,
      description: role.description,
      capabilities: [...role.capabilities],
      ...(provider === undefined ? {} : { model: provider.config.model }),
    },
    // Text only, no side effects: a rerun from the start is harmless.
    resumable: true,
    retryable: true,
    timeoutMs: options.timeoutMs ?? DEFAULT_LLM_TIMEOUT_MS,
    availability(): Availability | Promise<Availability> {
      return provider === undefined ? { available: false, reason: NO_PROVIDER_REASON } : provider.availability();
    },
    async execute(ctx: ExecutionContext): Promise<ExecutionResult> {
      if (provider === undefined) throw new ExecutionFailedError(NO_PROVIDER_REASON);
      const model = ctx.request.model ?? provider.config.model;
      ctx.progress(0, `asking ${model}`);
      let streaming = false;
      const result = await provider.chat(
        [
          { role: "system", content: role.systemPrompt },
          { role: "user", content: `Task: ${ctx.request.description}\n\n${ctx.request.input}` },
        ],
        {
          model,
          signal: ctx.signal,
          onText: (text) => {
            if (!streaming) {
              streaming = true;
              ctx.progress(10, `${model} is answering`);
            }
            ctx.output(text);
          },
        },
      );
      ctx.progress(100, `${model} finished${result.finishReason === undefined ? "" : ` (${result.finishReason})`}`);
      return { output: result.content, data: { model, finishReason: result.finishReason } };
    },
  };
}
