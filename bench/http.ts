/**
 * `npm run bench:http`: submit -> completed over the HTTP API, beside a bare
 * node:http handler doing the same round trip on the same engine in the same run.
 * Prints one JSON object. Both servers speak the same wire format and are driven
 * by the same client code, so the ratio is the cost of the framework, auth,
 * validation and SSE bookkeeping.
 */
import "../src/polyfills.js";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { TransportAdapter } from "../src/contract/types.js";
import { LocalTransportAdapter } from "../src/transport/local-adapter.js";
import { HTTPTransportAdapter, parseSse } from "../src/transport/http-adapter.js";
import { createHttpServer } from "../node/http/index.js";
import { sseFrame } from "../node/http/sse.js";
import { sized } from "./report.js";

const TOKEN = "bench-token";
const WARMUP = sized(100, 5);
const SEQUENTIAL = sized(400, 10);
const CONCURRENCY = 16;
const PARALLEL_TASKS = sized(2000, 50);
const ROUNDS = sized(4, 1);

interface Figures {
  p50Ms: number;
  p99Ms: number;
  tasksPerSec: number;
}

/** One round trip: submit, then follow the event stream until it ends. */
type RoundTrip = () => Promise<void>;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

interface Samples {
  latencies: number[];
  tasks: number;
  seconds: number;
}

async function sample(trip: RoundTrip, samples: Samples, sequential: number, parallel: number): Promise<void> {
  for (let i = 0; i < sequential; i += 1) {
    const start = performance.now();
    await trip();
    samples.latencies.push(performance.now() - start);
  }
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < parallel) {
        next += 1;
        await trip();
      }
    }),
  );
  samples.seconds += (performance.now() - start) / 1000;
  samples.tasks += parallel;
}

/**
 * Measures every variant in interleaved rounds, so storage growth and other load
 * on the machine fall on all of them alike rather than on whichever ran last.
 */
async function measureAll(trips: Record<string, RoundTrip>): Promise<Record<string, Figures>> {
  const samples: Record<string, Samples> = {};
  for (const [name, trip] of Object.entries(trips)) {
    for (let i = 0; i < WARMUP; i += 1) await trip();
    samples[name] = { latencies: [], tasks: 0, seconds: 0 };
  }
  const entries = Object.entries(trips);
  for (let r = 0; r < ROUNDS; r += 1) {
    // Rotate the order each round: the engine's background work (group commits,
    // compaction) left by one variant must not always land on the same next one.
    for (let k = 0; k < entries.length; k += 1) {
      const [name, trip] = entries[(r + k) % entries.length] as [string, RoundTrip];
      await sample(trip, samples[name] as Samples, SEQUENTIAL / ROUNDS, PARALLEL_TASKS / ROUNDS);
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([name, s]) => {
      const sorted = s.latencies.sort((a, b) => a - b);
      return [name, { p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), tasksPerSec: Math.round(s.tasks / s.seconds) }];
    }),
  );
}

/** The client both HTTP servers are measured with: fetch for the submit, fetch + SSE parsing for the stream. */
function wireTrip(base: string): RoundTrip {
  const headers = { authorization: `Bearer ${TOKEN}` };
  return async () => {
    const submitted = await fetch(`${base}/v1/tasks`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ description: "bench", input: "x", agentId: "echo" }),
    });
    const task = (await submitted.json()) as { id: string };
    const stream = await fetch(`${base}/v1/tasks/${task.id}/events`, { headers: { ...headers, accept: "text/event-stream" } });
    if (stream.body === null) throw new Error("no event stream");
    for await (const message of parseSse(stream.body)) if (message.event === "end") return;
    throw new Error("stream ended without end event");
  };
}

/** The same two routes on bare node:http: no auth, no validation, no framework. */
async function startBare(adapter: TransportAdapter): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? "";
    if (req.method === "POST" && url === "/v1/tasks") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        adapter.submitTask(JSON.parse(Buffer.concat(chunks).toString("utf8")) as { description: string; input: string }).then(
          (task) => {
            res.writeHead(201, { "content-type": "application/json" });
            res.end(JSON.stringify(task));
          },
          (err: unknown) => {
            res.writeHead(500);
            res.end(String(err));
          },
        );
      });
      return;
    }
    const match = /^\/v1\/tasks\/([^/]+)\/events$/.exec(url);
    if (req.method === "GET" && match?.[1] !== undefined) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      void (async () => {
        for await (const event of adapter.streamTaskUpdates(match[1] as string)) res.write(sseFrame("update", event, event.seq));
        res.end(sseFrame("end", {}));
      })();
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "coderclaw-bench-http-"));
  const adapter = new LocalTransportAdapter({ dataDir, maxConcurrentTasks: 64 });
  try {
    const bare = await startBare(adapter);
    const server = await createHttpServer({
      adapter,
      authenticate: (token) => {
        if (token !== TOKEN) throw new Error("bad token");
        return { userId: "bench" };
      },
      authorize: () => ({ allowed: true }),
    });
    const client = new HTTPTransportAdapter({ baseUrl: server.url, token: TOKEN });
    const figures = await measureAll({
      inProcess: async () => {
        const task = await adapter.submitTask({ description: "bench", input: "x", agentId: "echo" });
        for await (const _event of adapter.streamTaskUpdates(task.id)) continue;
      },
      bareNodeHttp: wireTrip(bare.url),
      http: wireTrip(server.url),
      httpTransportAdapter: async () => {
        const task = await client.submitTask({ description: "bench", input: "x", agentId: "echo" });
        for await (const _event of client.streamTaskUpdates(task.id)) continue;
      },
    });
    await client.close();
    await server.close();
    await bare.close();
    const bareFigures = figures["bareNodeHttp"] as Figures;
    const httpFigures = figures["http"] as Figures;

    console.log(
      JSON.stringify({
        bench: "http",
        node: process.version,
        roundTrip: "POST /v1/tasks (echo agent) then GET /v1/tasks/:id/events until the end event",
        sequentialTasks: SEQUENTIAL,
        concurrency: CONCURRENCY,
        parallelTasks: PARALLEL_TASKS,
        ...figures,
        ratio: {
          p50HttpOverBare: round(httpFigures.p50Ms / bareFigures.p50Ms, 2),
          throughputHttpOverBare: round(httpFigures.tasksPerSec / bareFigures.tasksPerSec, 2),
        },
      }),
    );
  } finally {
    await adapter.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
