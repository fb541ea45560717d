/**
 * The executing node of `bench:workspace`, run with `fork()`: a node with a
 * temporary home that joins the parent's mesh with the invite it is sent, runs
 * the tasks that carry code the parent routes to it, and tells the parent when
 * each agent starts (once the task's workspace is ready). It also counts what the
 * parent sends it under the blob protocol and when, and sinks bytes on a bare
 * libp2p protocol for the raw-stream baseline, receives the ship floor
 * (bench/ship-floor.ts), and answers the CPU time it has
 * used (all its threads).
 */
import "../src/polyfills.js";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import type { AgentExecutor } from "../src/agents/executor.js";
import { createNode } from "../node/create-node.js";
import { serveRawSink } from "./raw-echo.js";
import { serveShipFloor } from "./ship-floor.js";

/** What the `bench-edit` agent does to its workspace (its task's input, as JSON): paths relative to the root. */
export interface Edits {
  modify: string[];
  remove: string;
  add: string;
}

/** Requests from the parent; each is answered with a message carrying the same `id`. */
export type ExecutorRequest =
  | { id: number; join: string }
  | { id: number; sink: number }
  | { id: number; watch: string }
  | { id: number; counters: string }
  | { id: number; cpu: true }
  | { id: number; stop: true };

/** Sent unprompted: an agent began work on its task's workspace here, at `at` (ms since the epoch), when this process had used `cpuMs` of CPU. */
export interface StartedMessage {
  started: string;
  at: number;
  cpuMs: number;
}

const send = (m: unknown): void => void process.send?.(m);
const cpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const started = (taskId: string): void => send({ started: taskId, at: Date.now(), cpuMs: cpuMs() } satisfies StartedMessage);

/**
 * Does nothing to its workspace: what is measured is the way there. The engine
 * marks a task running before its workspace is ready, so the start that counts
 * is this agent's.
 */
const noop: AgentExecutor = {
  info: { id: "bench-noop", name: "bench no-op", description: "starts, says so, and ends", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    started(ctx.taskId);
    return { output: "" };
  },
};

/** Edits a few files of its workspace, as an agent's change would: the {@link Edits} its input names. */
const editor: AgentExecutor = {
  info: { id: "bench-edit", name: "bench edit", description: "edits a few files of its workspace", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    started(ctx.taskId);
    const edits = JSON.parse(ctx.request.input) as Edits;
    for (const path of edits.modify) await appendFile(join(ctx.workspace, path), "edited by the agent\n");
    unlinkSync(join(ctx.workspace, edits.remove));
    writeFileSync(join(ctx.workspace, edits.add), "added by the agent\n");
    return { output: "edited" };
  },
};

const dataDir = mkdtempSync(join(tmpdir(), "cc-bench-ws-executor-"));
const node = await createNode({ dataDir, mdns: false, agents: createBuiltinRegistry([noop, editor]), maxConcurrentTasks: 4 });

const sink = await serveRawSink(node.libp2p);
await serveShipFloor(node.libp2p, dataDir);

/**
 * When the blob-protocol bytes from one peer first and last grew. Sampled on a
 * timer: the transfers measured take seconds, so 5 ms is well inside the noise.
 */
let watch: { peer: string; timer: NodeJS.Timeout; base: number; last: number; firstAt?: number; lastAt?: number } | undefined;

process.on("message", (m: ExecutorRequest) => {
  void (async () => {
    if ("join" in m) {
      await node.pairing.join(m.join);
      send({ id: m.id, peerId: node.peerId });
    } else if ("sink" in m) {
      sink.expect(m.sink);
      send({ id: m.id });
    } else if ("watch" in m) {
      if (watch !== undefined) clearInterval(watch.timer);
      const base = node.blobs.client.counters(m.watch).received;
      const w = { peer: m.watch, base, last: base, timer: setInterval(() => sample(w), 5) } as NonNullable<typeof watch>;
      watch = w;
      send({ id: m.id });
    } else if ("cpu" in m) {
      send({ id: m.id, cpuMs: cpuMs() });
    } else if ("counters" in m) {
      const counters = node.blobs.client.counters(m.counters);
      const w = watch?.peer === m.counters ? watch : undefined;
      if (w !== undefined) {
        clearInterval(w.timer);
        sample(w);
        watch = undefined;
      }
      send({ id: m.id, ...counters, ...(w?.firstAt !== undefined && { firstAt: w.firstAt, lastAt: w.lastAt }) });
    } else {
      await node.stop();
      rmSync(dataDir, { recursive: true, force: true });
      send({ id: m.id });
      process.exit(0);
    }
  })().catch((err: unknown) => {
    send({ id: m.id, error: (err as Error).message });
  });
});

function sample(w: NonNullable<typeof watch>): void {
  const received = node.blobs.client.counters(w.peer).received;
  if (received === w.last) return;
  const now = Date.now();
  // The first sample that sees bytes caught them at most 5 ms late: the interval is the error bar.
  w.firstAt ??= now;
  w.lastAt = now;
  w.last = received;
}

send({ ready: true });
