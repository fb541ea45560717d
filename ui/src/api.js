import { createParser } from "eventsource-parser";

/** Largest event the page takes from a stream: the node's are far smaller, so a bigger one is a broken stream. */
const MAX_EVENT_CHARS = 1 << 20;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30_000;

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A stream the node refused with a status that another try would not change (404: no such stream here; 403). */
export class StreamRefused extends Error {
  constructor(path, status) {
    super(`stream ${path}: ${status}`);
    this.status = status;
  }
}

/** Thrown when the node refuses the session token: the page goes back to the login form. */
export class Unauthenticated extends Error {}

/**
 * Calls to the node's API with the session token in a header (never a cookie, so other
 * sites cannot make writes on our behalf). The token is read at each call: what the tab
 * holds now is what is sent.
 */
export function createApi(token) {
  const headers = (extra) => ({ authorization: `Bearer ${token()}`, ...extra });

  async function call(path, { method = "GET", body } = {}) {
    const response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (response.status === 401) throw new Unauthenticated("session expired");
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error?.message ?? `${method} ${path}: ${response.status}`);
    return data;
  }

  /**
   * Follows a server-sent event stream over fetch, since EventSource cannot send the token header.
   * Calls `onOpen` once the node has accepted it, `onEvent(name, data)` for each event before `end`.
   * Resolves true when the node ended the stream (`end`), false when it was cut.
   */
  async function follow(path, signal, onEvent, onOpen) {
    const response = await fetch(path, { headers: headers({ accept: "text/event-stream" }), signal });
    if (response.status === 401) throw new Unauthenticated("session expired");
    if (response.status >= 400 && response.status < 500) throw new StreamRefused(path, response.status);
    if (!response.ok || response.body === null) throw new Error(`stream ${path}: ${response.status}`);
    onOpen?.();
    let ended = false;
    let broken;
    const parser = createParser({
      maxBufferSize: MAX_EVENT_CHARS,
      onEvent: (e) => {
        if (e.event === "end") ended = true;
        else if (!ended) onEvent(e.event ?? "message", JSON.parse(e.data));
      },
      onError: (err) => (broken = err),
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    while (!ended) {
      const { value, done } = await reader.read();
      if (done) return false;
      parser.feed(value);
      if (broken !== undefined) throw new Error(`stream ${path}: ${broken.message}`);
    }
    await reader.cancel();
    return true;
  }

  /**
   * Follows a stream that lasts as long as the node: when it is cut or cannot be opened, opens it again
   * after a delay that doubles from 1 s to 30 s (with jitter, so many tabs do not return at once) and
   * is back to 1 s once the node accepts it. Ends when `signal` aborts, or with `untilEnd` once the node
   * ends the stream; a refused session or stream is thrown. `path` may be a function, asked at each
   * opening, so a stream opened again resumes after the last event seen (`?after=<seq>`).
   */
  async function followLive(path, signal, { onOpen, onEvent, untilEnd = false }) {
    let delay = RECONNECT_MIN_MS;
    while (!signal.aborted) {
      try {
        const ended = await follow(typeof path === "function" ? path() : path, signal, onEvent, () => {
          delay = RECONNECT_MIN_MS;
          onOpen?.();
        });
        if (ended && untilEnd) return;
      } catch (err) {
        if (err instanceof Unauthenticated || err instanceof StreamRefused) throw err;
      }
      await pause(delay * (0.75 + Math.random() / 4), signal);
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  return { call, follow, followLive };
}
