import type { ServerResponse } from "node:http";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { SSE_EVENTS, type ErrorBody } from "../../src/transport/http-wire.js";
import { untilAborted } from "../../src/util/until-aborted.js";

/** How one Server-Sent Events response is paced and bounded. */
export interface SseOptions {
  /** Comment line sent when idle, so proxies and the client's idle timer see a live stream. */
  heartbeatMs: number;
  /** Reconnect delay suggested to EventSource clients. */
  retryMs: number;
  /** Aborts when the server closes; the stream ends without an `end` event so clients resume elsewhere. */
  signal: AbortSignal;
  /**
   * Asked at each heartbeat whether the caller may still follow the stream; a
   * rejection ends it with an `error` event carrying the reason.
   */
  recheck?: () => Promise<void>;
}

/** Encodes one SSE frame. Data is JSON, so it never contains a raw newline. */
export function sseFrame(event: string, data: unknown, id?: number): string {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return `${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Writes `source` to `res` as an SSE stream: one `update` event per task update
 * (or workflow record) with `id:` set to its seq, then an `end` event once the
 * source finishes (the task or workflow ended). Stops promptly when the client goes away or the
 * server closes, and never queues more than one frame beyond the socket's buffer:
 * a reader that stops reading stalls the source, and the socket's inactivity
 * timeout eventually drops it.
 */
export async function writeSseStream<T extends { seq?: number } = TaskUpdateEvent>(
  res: ServerResponse,
  source: (signal: AbortSignal) => AsyncIterable<T>,
  options: SseOptions,
): Promise<void> {
  const abort = new AbortController();
  const onGone = (): void => abort.abort();
  res.once("close", onGone);
  options.signal.addEventListener("abort", onGone, { once: true });

  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    // Reverse proxies (nginx) buffer responses unless told not to; SSE must flow.
    "x-accel-buffering": "no",
  });
  res.write(`retry: ${options.retryMs}\n\n`);

  let rechecking = false;
  const heartbeat = setInterval(() => {
    if (!res.writableNeedDrain && !res.writableEnded) res.write(": heartbeat\n\n");
    if (options.recheck === undefined || rechecking) return;
    rechecking = true;
    options.recheck().then(
      () => (rechecking = false),
      (err: unknown) => {
        // Ended here, before the loop can write again: once aborted it never does. A stream that
        // ended meanwhile is left alone (a second end would be an error event nobody listens to).
        if (abort.signal.aborted || res.writableEnded) return;
        abort.abort();
        res.end(sseFrame(SSE_EVENTS.error, sseErrorBody(err)));
      },
    );
  }, options.heartbeatMs);
  heartbeat.unref();

  const iterator = source(abort.signal)[Symbol.asyncIterator]();
  try {
    for (;;) {
      // A client that went away ends the stream, whatever the source was waiting for.
      const next = await untilAborted(iterator.next(), abort.signal).catch((error: unknown) => {
        if (abort.signal.aborted) return null;
        throw error;
      });
      if (next === null || next.done === true) break;
      const event = next.value;
      if (!res.write(sseFrame(SSE_EVENTS.update, event, event.seq))) await drainOrAbort(res, abort.signal);
      if (abort.signal.aborted) break;
    }
    if (!abort.signal.aborted) res.end(sseFrame(SSE_EVENTS.end, {}));
  } catch (err) {
    if (!abort.signal.aborted) res.end(sseFrame(SSE_EVENTS.error, sseErrorBody(err)));
  } finally {
    clearInterval(heartbeat);
    res.off("close", onGone);
    options.signal.removeEventListener("abort", onGone);
    if (abort.signal.aborted) {
      iterator.return?.().catch(() => undefined);
      if (!res.writableEnded) res.end();
    }
  }
}

function drainOrAbort(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

function sseErrorBody(err: unknown): ErrorBody {
  if (err instanceof CoderClawError) {
    return { error: { code: err.code, message: err.message, ...(err.field === undefined ? {} : { field: err.field }) } };
  }
  return { error: { code: "UNAVAILABLE", message: "event stream failed" } };
}
