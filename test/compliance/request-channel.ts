import fc from "fast-check";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { CoderClawError } from "../../src/contract/errors.js";
import {
  ChannelClosedError,
  createMessageCodec,
  FrameTimeoutError,
  PeerLimitError,
  RequestChannel,
  serveRequests,
  type MessageChannel,
  type RequestShape,
} from "../../protocols/framing/index.js";

const rid = z.number().int().min(1);
/** A toy request protocol: asks answered after a delay (so out of order), streams of items, refusals, notices. */
export const toySchema = z.discriminatedUnion("t", [
  z.strictObject({ t: z.literal("ask"), rid, n: z.number().int(), delayMs: z.number().int().min(0).max(5000) }),
  z.strictObject({ t: z.literal("ans"), rid, n: z.number().int() }),
  z.strictObject({ t: z.literal("sub"), rid, count: z.number().int().min(-1).max(1000) }),
  z.strictObject({ t: z.literal("item"), rid, i: z.number().int() }),
  z.strictObject({ t: z.literal("end"), rid }),
  z.strictObject({ t: z.literal("unsub"), rid }),
  z.strictObject({ t: z.literal("err"), rid, code: z.string(), message: z.string() }),
  z.strictObject({ t: z.literal("note"), text: z.string() }),
]);
/** A message of the toy protocol the suite speaks. */
export type ToyMessage = z.infer<typeof toySchema>;
/** The toy protocol's strict codec, for channel factories that need one. */
export const toyCodec = createMessageCodec({ version: 1, schema: toySchema, maxMessageBytes: 64 * 1024 });

const shape: RequestShape<ToyMessage> = {
  answerTo: (m) => ("rid" in m && m.t !== "ask" && m.t !== "sub" && m.t !== "unsub" ? m.rid : undefined),
  failure: (m) => (m.t === "err" ? new CoderClawError(m.code as "NOT_FOUND", m.message) : undefined),
  ends: (m) => m.t === "end",
  cancel: (r) => ({ t: "unsub", rid: r }),
};

/** What the toy server saw, for assertions about the client's behaviour on the wire. */
interface ServerLog {
  outstanding: number;
  mostOutstanding: number;
  unsubscribed: number[];
}

/** Answers asks after their delay (concurrently), streams items, refuses negative asks. */
function serveToy(channel: MessageChannel<ToyMessage>): ServerLog {
  const log: ServerLog = { outstanding: 0, mostOutstanding: 0, unsubscribed: [] };
  const live = new Map<number, NodeJS.Timeout>();
  void (async () => {
    try {
      for await (const m of channel) {
        if (m.t === "ask") {
          log.outstanding++;
          log.mostOutstanding = Math.max(log.mostOutstanding, log.outstanding);
          setTimeout(() => {
            log.outstanding--;
            const answer: ToyMessage = m.n < 0 ? { t: "err", rid: m.rid, code: "NOT_FOUND", message: `no ${m.n}` } : { t: "ans", rid: m.rid, n: m.n * 2 };
            channel.send(answer).catch(() => undefined);
          }, m.delayMs);
        } else if (m.t === "sub") {
          if (m.count >= 0) {
            for (let i = 0; i < m.count; i++) await channel.send({ t: "item", rid: m.rid, i });
            await channel.send({ t: "end", rid: m.rid });
          } else {
            let i = 0;
            live.set(m.rid, setInterval(() => void channel.send({ t: "item", rid: m.rid, i: i++ }).catch(() => undefined), 5));
          }
        } else if (m.t === "unsub") {
          log.unsubscribed.push(m.rid);
          clearInterval(live.get(m.rid));
          live.delete(m.rid);
        }
      }
    } catch {
      // The client went away; the test reads what the log holds.
    } finally {
      for (const timer of live.values()) clearInterval(timer);
    }
  })();
  return log;
}

/** Two connected ends of a channel carrying {@link ToyMessage}, and how to release them. */
export interface ChannelPairFactory {
  open(): Promise<{ client: MessageChannel<ToyMessage>; server: MessageChannel<ToyMessage> }>;
  release(): Promise<void>;
}

/**
 * The request-channel contract: every binding of {@link MessageChannel} (libp2p
 * streams, the in-memory pair) must carry it the same way.
 */
export function requestChannelSuite(name: string, factory: () => ChannelPairFactory): void {
  describe(`request channel contract: ${name}`, () => {
    let current: ChannelPairFactory | undefined;
    afterEach(async () => {
      await current?.release();
      current = undefined;
    });
    const setup = async (options: ConstructorParameters<typeof RequestChannel<ToyMessage>>[2] = {}) => {
      current = factory();
      const { client, server } = await current.open();
      const log = serveToy(server);
      return { requests: new RequestChannel(client, shape, options), log, client, server };
    };
    const ask = (n: number, delayMs = 0) => (r: number): ToyMessage => ({ t: "ask", rid: r, n, delayMs });

    it("pairs each answer with its request when answers come back out of order", async () => {
      const { requests } = await setup();
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 20 })), { minLength: 1, maxLength: 12 }), async (asks) => {
          const answers = await Promise.all(asks.map(([n, delay]) => requests.request(ask(n, delay))));
          expect(answers.map((a) => (a.t === "ans" ? a.n : undefined))).toEqual(asks.map(([n]) => n * 2));
          expect(requests.inFlight).toBe(0);
        }),
        { numRuns: 25 },
      );
    });

    it("rejects with the remote's typed error, and the channel serves the next request", async () => {
      const { requests } = await setup();
      const refused = await requests.request(ask(-3)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(CoderClawError);
      expect(refused).toMatchObject({ code: "NOT_FOUND", message: "no -3" });
      expect(await requests.request(ask(4))).toEqual({ t: "ans", rid: expect.any(Number), n: 8 });
    });

    it("gives up at the deadline with a timeout, drops the late answer, and stays usable", async () => {
      const { requests } = await setup({ timeoutMs: 50 });
      const late = await requests.request(ask(1, 300)).catch((e: unknown) => e);
      expect(late).toBeInstanceOf(FrameTimeoutError);
      expect(late).toMatchObject({ code: "TIMEOUT" });
      expect(requests.inFlight).toBe(0);
      await sleep(350);
      expect(await requests.request(ask(5), { timeoutMs: 2000 })).toMatchObject({ n: 10 });
    });

    it("cancels a request with its signal, rejecting with the signal's reason", async () => {
      const { requests } = await setup();
      const controller = new AbortController();
      const pending = requests.request(ask(1, 500), { signal: controller.signal });
      controller.abort(new Error("caller gave up"));
      await expect(pending).rejects.toThrow("caller gave up");
      expect(requests.inFlight).toBe(0);
      const already = requests.request(ask(1), { signal: AbortSignal.abort(new Error("too late")) });
      await expect(already).rejects.toThrow("too late");
    });

    it("keeps at most maxInFlight requests unanswered at the remote; the rest wait their turn", async () => {
      const { requests, log } = await setup({ maxInFlight: 3 });
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => requests.request(ask(i, 10))));
      expect(answers.map((a) => (a.t === "ans" ? a.n : -1))).toEqual(Array.from({ length: 12 }, (_, i) => i * 2));
      expect(log.mostOutstanding).toBeLessThanOrEqual(3);
      expect(log.mostOutstanding).toBe(3);
    });

    it("frees the slot of a request that timed out while waiting for one", async () => {
      const { requests } = await setup({ maxInFlight: 1 });
      const slow = requests.request(ask(1, 200));
      const starved = await requests.request(ask(2), { timeoutMs: 30 }).catch((e: unknown) => e);
      expect(starved).toBeInstanceOf(FrameTimeoutError);
      await expect(slow).resolves.toMatchObject({ n: 2 });
      await expect(requests.request(ask(3), { timeoutMs: 2000 })).resolves.toMatchObject({ n: 6 });
    });

    it("streams answers in order until the remote ends the stream", async () => {
      const { requests } = await setup();
      const items: number[] = [];
      const exchange = requests.open((r) => requests.channel.send({ t: "sub", rid: r, count: 50 }), { stream: true });
      for await (const m of exchange) if (m.t === "item") items.push(m.i);
      expect(items).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(await exchange.next()).toBeUndefined();
    });

    it("cancels a stream at the remote when the caller closes it, and drops what still arrives", async () => {
      const { requests, log } = await setup();
      const controller = new AbortController();
      const exchange = requests.open((r) => requests.channel.send({ t: "sub", rid: r, count: -1 }), { stream: true, signal: controller.signal });
      const first = await exchange.next();
      expect(first).toMatchObject({ t: "item", i: 0 });
      controller.abort();
      expect(await exchange.next()).toBeUndefined();
      await expect.poll(() => log.unsubscribed).toEqual([exchange.rid]);
      expect(await requests.request(ask(1))).toMatchObject({ n: 2 });
    });

    it("refuses a stream beyond maxStreams with a peer-limit error", async () => {
      const { requests } = await setup({ maxStreams: 1 });
      const one = requests.open((r) => requests.channel.send({ t: "sub", rid: r, count: -1 }), { stream: true });
      const two = requests.open((r) => requests.channel.send({ t: "sub", rid: r, count: -1 }), { stream: true });
      await expect(two.next()).rejects.toBeInstanceOf(PeerLimitError);
      await expect(one.next()).resolves.toMatchObject({ t: "item" });
      one.close();
    });

    it("hands messages that answer no request to onUnsolicited", async () => {
      const notes: string[] = [];
      const { server, requests } = await setup({ onUnsolicited: (m) => m.t === "note" && notes.push(m.text) });
      await server.send({ t: "note", text: "lease" });
      await expect.poll(() => notes).toEqual(["lease"]);
      expect(await requests.request(ask(2))).toMatchObject({ n: 4 });
    });

    it("fails every open exchange as unavailable when the remote goes, and refuses new ones", async () => {
      const { requests, server } = await setup();
      const waiting = requests.request(ask(1, 5000));
      const stream = requests.open((r) => requests.channel.send({ t: "sub", rid: r, count: -1 }), { stream: true });
      await stream.next();
      await sleep(20);
      server.abort(new ChannelClosedError("server went away"));
      const [a, b] = await Promise.all([waiting.catch((e: unknown) => e), (async () => { for (;;) await stream.next(); })().catch((e: unknown) => e)]);
      expect(a).toMatchObject({ code: "UNAVAILABLE" });
      expect(b).toMatchObject({ code: "UNAVAILABLE" });
      await expect.poll(() => requests.closed).toBe(true);
      await expect(requests.request(ask(1))).rejects.toMatchObject({ code: "UNAVAILABLE" });
    });

    it("serves requests in turn with serveRequests, sending refusals for what the handler throws", async () => {
      current = factory();
      const { client, server } = await current.open();
      void serveRequests(server, {
        answer: (m): ToyMessage | undefined => {
          if (m.t !== "ask") return undefined;
          if (m.n < 0) throw new Error(`negative ${m.n}`);
          return { t: "ans", rid: m.rid, n: m.n + 1 };
        },
        refusal: (m, error): ToyMessage | undefined => ("rid" in m ? { t: "err", rid: m.rid, code: "INVALID_INPUT", message: error.message } : undefined),
      }).catch(() => undefined);
      const requests = new RequestChannel(client, shape);
      expect(await requests.request(ask(1))).toMatchObject({ n: 2 });
      await expect(requests.request(ask(-1))).rejects.toMatchObject({ code: "INVALID_INPUT", message: "negative -1" });
      expect(await requests.request(ask(2))).toMatchObject({ n: 3 });
    });
  });
}
