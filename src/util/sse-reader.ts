import { createParser } from "eventsource-parser";

/** One dispatched Server-Sent Event. */
export interface SseMessage {
  event: string;
  data: string;
  /** The last event id the stream set (it carries over to later events, as in browsers). */
  id?: string;
}

/** Options of {@link readSse}. */
export interface ReadSseOptions {
  /** Characters one event (its data and an unfinished line) may hold: past it the stream is refused. */
  maxEventChars: number;
  /** Turns a refusal into the caller's error. */
  error: (message: string) => Error;
  /** Runs on every chunk read, heartbeats included, so callers can time out silent streams. */
  onBytes?: () => void;
  /** A line with a field SSE does not define; ignored unless given (it may throw to refuse the stream). */
  onUnknownField?: (line: string) => void;
  /** An event the stream ends without its blank line still counts (browsers drop it). */
  endCompletesEvent?: boolean;
}

/**
 * The events of a `text/event-stream` body, parsed by eventsource-parser
 * (WHATWG rules: CRLF, CR or LF line ends, multi-line data, comments), with
 * what an event may buffer bounded, so a server cannot make the reader hold
 * unbounded memory with one endless line. The body is cancelled when the
 * caller stops reading.
 */
export async function* readSse(body: ReadableStream<Uint8Array>, options: ReadSseOptions): AsyncGenerator<SseMessage> {
  const ready: SseMessage[] = [];
  let lastId: string | undefined;
  let refused: Error | undefined;
  const parser = createParser({
    maxBufferSize: options.maxEventChars,
    onEvent: (e) => {
      if (e.id !== undefined) lastId = e.id;
      ready.push({ event: e.event ?? "message", data: e.data, ...(lastId !== undefined && { id: lastId }) });
    },
    onError: (err) => {
      if (err.type === "max-buffer-size-exceeded") refused ??= options.error(`an event is over ${options.maxEventChars} characters`);
      else if (err.type === "unknown-field") options.onUnknownField?.(err.line ?? "");
    },
  });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) parser.feed(decoder.decode() + (options.endCompletesEvent === true ? "\n\n" : ""));
      else {
        options.onBytes?.();
        parser.feed(decoder.decode(value, { stream: true }));
      }
      if (refused !== undefined) throw refused;
      while (ready.length > 0) yield ready.shift()!;
      if (done) return;
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}
