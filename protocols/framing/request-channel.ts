import { ChannelClosedError, FrameTimeoutError, FramingError, PeerLimitError } from "./errors.js";
import type { MessageChannel } from "./message-channel.js";
import { AsyncQueue } from "../../src/util/async-queue.js";

/**
 * How a protocol's messages pair answers with requests. Protocols keep their
 * own wire shapes (`rid`, `n`, `id`); this is the one place each says how to
 * read them.
 */
export interface RequestShape<T> {
  /** The request id `message` answers, or undefined for a message the remote sends on its own (a lease, a notice). */
  answerTo(message: T): number | undefined;
  /** The remote's refusal, when `message` is one (typed by the protocol); it ends its exchange. */
  failure(message: T): Error | undefined;
  /** Whether `message` ends a stream exchange. A request exchange ends with its first answer. */
  ends?(message: T): boolean;
  /** The message that tells the remote to stop a stream exchange the caller gave up (an unsubscribe). */
  cancel?(rid: number): T;
}

/** Options of {@link RequestChannel}. */
export interface RequestChannelOptions<T> {
  /** Deadline of a request's answer (and of a stream's first message when asked), ms; `Infinity` for none. Default 15 s. */
  timeoutMs?: number;
  /** Requests waiting for their answer at once; more wait for a slot (inside their deadline). Default 1,024. */
  maxInFlight?: number;
  /** Open stream exchanges at once; more are refused with {@link PeerLimitError}. Default 4,096. */
  maxStreams?: number;
  /** First request id. Default 1. */
  firstRid?: number;
  /** Messages that answer no request (see {@link RequestShape.answerTo}). */
  onUnsolicited?: (message: T, channel: MessageChannel<T>) => void;
  /** The channel ended; `error` is set when it failed. Every open exchange has been failed by then. */
  onClose?: (error?: FramingError) => void;
}

/** Per-exchange options of {@link RequestChannel.open}. */
export interface ExchangeOptions<T> {
  /** Many answers until {@link RequestShape.ends}, instead of one. */
  stream?: boolean;
  /** Deadline of the first answer, ms; default the channel's for a request, none for a stream. */
  timeoutMs?: number;
  /** Aborting ends the exchange (and cancels a stream at the remote). */
  signal?: AbortSignal;
  /** Sees each answer as it arrives, before it is read. */
  onMessage?: (message: T) => void;
}

/** One request and what answers it. Read it with {@link Exchange.next} or `for await`. */
export interface Exchange<T> extends AsyncIterable<T> {
  readonly rid: number;
  /**
   * The next answer, or undefined once the exchange has ended (its last answer
   * read, or closed here). Rejects with the remote's failure, a
   * {@link FrameTimeoutError}, the signal's reason or the channel's end.
   */
  next(): Promise<T | undefined>;
  /** Stop: later answers are dropped, and a stream is cancelled at the remote. Idempotent. */
  close(): void;
}

/** How an exchange ended: cleanly (its last answer, or closed here), or with an error. */
type Ending = { done: true } | { error: unknown };

/**
 * Requests and their answers over one {@link MessageChannel}: request ids,
 * deadlines, cancellation, a bound on requests in flight, streams of answers,
 * and typed remote errors. It reads the channel; the protocol sends requests
 * through {@link RequestChannel.open}.
 */
export class RequestChannel<T> {
  readonly channel: MessageChannel<T>;
  readonly #shape: RequestShape<T>;
  readonly #options: RequestChannelOptions<T>;
  readonly #exchanges = new Map<number, ExchangeState<T>>();
  readonly #slotWaiters: Array<() => void> = [];
  #nextRid: number;
  #inFlight = 0;
  #awaiting = 0;
  #streams = 0;
  #end: FramingError | undefined;

  constructor(channel: MessageChannel<T>, shape: RequestShape<T>, options: RequestChannelOptions<T> = {}) {
    this.channel = channel;
    this.#shape = shape;
    this.#options = options;
    this.#nextRid = options.firstRid ?? 1;
    void this.#read();
  }

  /** The remote peer. */
  get peer(): string {
    return this.channel.peer;
  }

  /** True once the channel has ended; every exchange fails from then on. */
  get closed(): boolean {
    return this.#end !== undefined || this.channel.closed;
  }

  /** Requests sent and not yet answered (the ones {@link RequestChannelOptions.maxInFlight} bounds). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Exchanges sent and not answered yet, requests and streams alike: how busy the remote is with this side's asks. */
  get awaiting(): number {
    return this.#awaiting;
  }

  /**
   * Start an exchange on a new request id: `send` sends the request (or queues
   * it with others) once a slot is free. With `stream`, answers keep coming
   * until one {@link RequestShape.ends} it.
   */
  open(send: (rid: number) => Promise<void>, options: ExchangeOptions<T> = {}): Exchange<T> {
    const rid = this.#nextRid++;
    const state = new ExchangeState<T>(rid, options.stream === true, options.onMessage);
    const fail = (error: unknown): void => this.#settle(state, { error });
    if (this.#end !== undefined || this.channel.closed) {
      fail(this.#ended());
      return this.#view(state, options);
    }
    if (state.stream) {
      if (this.#streams >= (this.#options.maxStreams ?? 4096)) {
        fail(new PeerLimitError(`more than ${this.#options.maxStreams ?? 4096} open streams to ${this.peer}`, this.peer));
        return this.#view(state, options);
      }
      this.#streams++;
    }
    this.#exchanges.set(rid, state);
    const timeoutMs = options.timeoutMs ?? (state.stream ? undefined : (this.#options.timeoutMs ?? 15_000));
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
      state.timer = setTimeout(() => fail(new FrameTimeoutError(`no answer from ${this.peer} within ${timeoutMs} ms`, this.peer)), timeoutMs);
    }
    if (options.signal !== undefined) {
      const signal = options.signal;
      if (signal.aborted) this.#cancel(state);
      else {
        const onAbort = (): void => this.#cancel(state);
        signal.addEventListener("abort", onAbort, { once: true });
        state.cleanups.push(() => signal.removeEventListener("abort", onAbort));
      }
    }
    if (state.ended) return this.#view(state, options);
    const start = (): void => {
      if (state.ended) return;
      state.sent = true;
      this.#awaiting++;
      if (!state.stream) this.#inFlight++;
      send(rid).catch((error: unknown) => fail(error instanceof FramingError ? error : new ChannelClosedError(`cannot send to ${this.peer}: ${(error as Error)?.message ?? String(error)}`, { peer: this.peer, cause: error })));
    };
    // Sent in this turn when a slot is free, so it keeps its place among the channel's other sends.
    if (state.stream || this.#inFlight < this.#maxInFlight) start();
    else void this.#whenSlotFree(state).then(start);
    return this.#view(state, options);
  }

  /** Send `build(rid)` and wait for its one answer; rejects as {@link Exchange.next} does. */
  async request(build: (rid: number) => T, options: Omit<ExchangeOptions<T>, "stream"> = {}): Promise<T> {
    const exchange = this.open((rid) => this.channel.send(build(rid)), options);
    const answer = await exchange.next();
    if (answer === undefined) throw options.signal?.aborted ? options.signal.reason : new ChannelClosedError(`request to ${this.peer} ended without an answer`, { peer: this.peer });
    return answer;
  }

  /** Close the channel; open exchanges fail with {@link ChannelClosedError}. */
  async close(): Promise<void> {
    await this.channel.close();
    this.#finish();
  }

  #view(state: ExchangeState<T>, options: ExchangeOptions<T>): Exchange<T> {
    const next = async (): Promise<T | undefined> => {
      const answer = await state.answers.next();
      if (!answer.done) return answer.value;
      if (options.signal?.aborted && !state.stream) throw options.signal.reason;
      return undefined;
    };
    return {
      rid: state.rid,
      next,
      close: () => this.#cancel(state),
      async *[Symbol.asyncIterator]() {
        for (let m = await next(); m !== undefined; m = await next()) yield m;
      },
    };
  }

  get #maxInFlight(): number {
    return this.#options.maxInFlight ?? 1024;
  }

  async #whenSlotFree(state: ExchangeState<T>): Promise<void> {
    while (this.#inFlight >= this.#maxInFlight) {
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
      if (state.ended) {
        // This waiter gave up (its deadline passed): the slot it was woken for goes to the next.
        if (this.#inFlight < this.#maxInFlight) this.#slotWaiters.shift()?.();
        return;
      }
    }
  }

  /** Given up here: a stream already asked for is cancelled at the remote. */
  #cancel(state: ExchangeState<T>): void {
    if (state.ended) return;
    const cancel = state.stream && state.sent && this.#shape.cancel !== undefined && !this.channel.closed ? this.#shape.cancel(state.rid) : undefined;
    this.#settle(state, { done: true });
    if (cancel !== undefined) this.channel.send(cancel).catch(() => undefined);
  }

  /** End an exchange; frees its place. */
  #settle(state: ExchangeState<T>, ending: Ending): void {
    if (state.ended) return;
    state.end(ending);
    if (this.#exchanges.get(state.rid) === state) {
      this.#exchanges.delete(state.rid);
      if (state.stream) this.#streams--;
    }
    if (state.sent) this.#answered(state);
  }

  /** The exchange has its first answer (or will get none): the remote no longer owes this side one, and a request's slot is free. */
  #answered(state: ExchangeState<T>): void {
    if (state.answered) return;
    state.answered = true;
    this.#awaiting--;
    if (state.stream) return;
    this.#inFlight--;
    this.#slotWaiters.shift()?.();
  }

  async #read(): Promise<void> {
    try {
      for await (const message of this.channel) this.#dispatch(message);
    } catch {
      // The channel's failure is read below; every exchange is told.
    }
    this.#finish();
  }

  #dispatch(message: T): void {
    const rid = this.#shape.answerTo(message);
    if (rid === undefined) return this.#options.onUnsolicited?.(message, this.channel);
    const state = this.#exchanges.get(rid);
    if (state === undefined) return;
    this.#answered(state);
    state.clearTimer();
    const failure = this.#shape.failure(message);
    if (failure !== undefined) return this.#settle(state, { error: failure });
    state.onMessage?.(message);
    state.answers.push(message);
    if (!state.stream || this.#shape.ends?.(message) === true) this.#settle(state, { done: true });
  }

  #ended(): FramingError {
    return this.#end ?? this.channel.failure ?? new ChannelClosedError(`channel to ${this.peer} closed`, { peer: this.peer });
  }

  #finish(): void {
    if (this.#end !== undefined) return;
    this.#end = this.channel.failure ?? new ChannelClosedError(`channel to ${this.peer} closed`, { peer: this.peer });
    for (const state of [...this.#exchanges.values()]) this.#settle(state, { error: this.#end });
    for (const wake of this.#slotWaiters.splice(0)) wake();
    this.#options.onClose?.(this.channel.failure);
  }
}

/** One exchange's bookkeeping, and its answers queued until read. */
class ExchangeState<T> {
  readonly answers = new AsyncQueue<T>();
  ended = false;
  sent = false;
  answered = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly cleanups: Array<() => void> = [];

  constructor(
    readonly rid: number,
    readonly stream: boolean,
    readonly onMessage: ((message: T) => void) | undefined,
  ) {}

  end(ending: Ending): void {
    this.ended = true;
    this.clearTimer();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if ("error" in ending) this.answers.fail(ending.error);
    else this.answers.end();
  }

  clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Options of {@link serveRequests}. */
export interface ServeRequestsOptions<T> {
  /** The answer to one request, or undefined to send none. */
  answer(message: T): T | undefined | Promise<T | undefined>;
  /** What to send when `answer` throws; without it the error ends the channel. */
  refusal?(message: T, error: Error): T | undefined;
}

/**
 * The answering side of a request protocol: each request in turn, its answer
 * sent before the next is read. Resolves when the remote ends the channel;
 * rejects with what broke it.
 */
export async function serveRequests<T>(channel: MessageChannel<T>, options: ServeRequestsOptions<T>): Promise<void> {
  for await (const message of channel) {
    let answer: T | undefined;
    try {
      answer = await options.answer(message);
    } catch (error) {
      const refusal = options.refusal?.(message, error instanceof Error ? error : new Error(String(error)));
      if (refusal === undefined) throw error;
      answer = refusal;
    }
    if (answer !== undefined) await channel.send(answer);
  }
}
