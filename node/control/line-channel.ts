import type { Socket } from "node:net";
import { ChannelClosedError, FrameTimeoutError, FrameTooLargeError, MalformedFrameError, type FramingError } from "../../protocols/framing/errors.js";
import type { MessageChannel } from "../../protocols/framing/message-channel.js";
import { AsyncQueue } from "../../src/util/async-queue.js";

/** Options of {@link jsonLineChannel}. */
export interface JsonLineChannelOptions<T> {
  socket: Socket;
  /** Who is at the other end, for error reports. */
  peer: string;
  /** Checks a parsed line; throws to refuse it (the channel then ends). */
  parse: (json: unknown) => T;
  /** Longest line accepted; a longer one ends the channel before it is buffered whole. */
  maxLineBytes: number;
  /** Lines parsed and not yet read above which the socket is paused. Default 256. */
  maxQueued?: number;
  /** A write waiting for the socket to drain gives up after this many ms. Default 30 s. */
  sendTimeoutMs?: number;
}

/**
 * A {@link MessageChannel} of JSON objects, one per line, over a stream socket
 * (the control socket). Anything that is not a line of valid JSON the `parse`
 * accepts, or a line over the limit, ends the channel with an error naming it.
 */
export function jsonLineChannel<T>(options: JsonLineChannelOptions<T>): MessageChannel<T> {
  const { socket, peer } = options;
  const queue = new AsyncQueue<T>();
  const maxQueued = options.maxQueued ?? 256;
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let ended = false;
  let failure: FramingError | undefined;

  const finish = (error?: FramingError): void => {
    if (ended) return;
    ended = true;
    failure = error;
    if (error === undefined) queue.end();
    else queue.fail(error);
  };
  const violation = (error: FramingError): void => {
    finish(error);
    socket.destroy();
  };
  const line = (bytes: Buffer): void => {
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString("utf8"));
    } catch {
      return violation(new MalformedFrameError(`a line from ${peer} is not valid JSON`, { peer }));
    }
    let message: T;
    try {
      message = options.parse(json);
    } catch (error) {
      return violation(new MalformedFrameError(`a line from ${peer} was refused: ${(error as Error).message}`, { peer, cause: error }));
    }
    queue.push(message);
    if (queue.size > maxQueued) socket.pause();
  };

  socket.on("data", (chunk: Buffer) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0 && !ended; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      if (partialBytes + piece.length > options.maxLineBytes) return violation(new FrameTooLargeError(partialBytes + piece.length, options.maxLineBytes, peer));
      line(partial.length === 0 ? piece : Buffer.concat([...partial, piece]));
      partial = [];
      partialBytes = 0;
      start = nl + 1;
    }
    if (ended || start >= chunk.length) return;
    partialBytes += chunk.length - start;
    if (partialBytes > options.maxLineBytes) return violation(new FrameTooLargeError(partialBytes, options.maxLineBytes, peer));
    partial.push(chunk.subarray(start));
  });
  socket.on("error", (error: NodeJS.ErrnoException) => finish(new ChannelClosedError(`connection to ${peer} failed (${error.code ?? error.message})`, { peer, cause: error })));
  socket.on("close", () => finish());

  return {
    peer,
    get closed() {
      return ended;
    },
    get failure() {
      return failure;
    },
    async send(message) {
      if (ended || !socket.writable) throw failure ?? new ChannelClosedError(`connection to ${peer} closed`, { peer });
      if (socket.write(JSON.stringify(message) + "\n")) return;
      const ms = options.sendTimeoutMs ?? 30_000;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          socket.off("drain", drained);
          reject(new FrameTimeoutError(`${peer} did not read for ${ms} ms`, peer));
        }, ms);
        const drained = (): void => {
          clearTimeout(timer);
          resolve();
        };
        socket.once("drain", drained);
      });
    },
    async close() {
      if (ended) return;
      socket.end();
      finish();
    },
    abort(error) {
      violation(error);
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = await queue.next();
        if (queue.size <= maxQueued / 2 && socket.isPaused()) socket.resume();
        if (next.done === true) return;
        yield next.value;
      }
    },
  };
}
