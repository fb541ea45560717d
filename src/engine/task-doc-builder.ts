import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import * as A from "@automerge/automerge";
import { CoderClawError } from "../contract/errors.js";
import { createTaskDoc, TASK_DOC_VERSION, type TaskDocRoot } from "./task-document.js";

/** A new task document, saved. */
export interface BuiltTaskDoc {
  bytes: Uint8Array;
  heads: A.Heads;
}

/** Builds new task documents: their bytes and heads, nothing kept in memory. */
export interface TaskDocBuilder {
  build(root: TaskDocRoot, actor: string): Promise<BuiltTaskDoc>;
  /** Stop background work; later builds start it again. */
  close(): Promise<void>;
}

function saveAndFree(doc: A.Doc<unknown>): BuiltTaskDoc {
  const built = { bytes: A.getBackend(doc).saveNoCompress(), heads: A.getHeads(doc) };
  A.free(doc);
  return built;
}

/** Builds on the calling thread. */
export class InlineTaskDocBuilder implements TaskDocBuilder {
  build(root: TaskDocRoot, actor: string): Promise<BuiltTaskDoc> {
    return Promise.resolve(saveAndFree(createTaskDoc(root, actor)));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The worker's program: {@link createTaskDoc} and a save, for a batch of roots
 * at a time. It is evaluated from this string rather than loaded from a file so
 * that it runs alike from the compiled package and from sources under test; it
 * finds Automerge through the path the main thread resolved.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const A = require(workerData.automerge);
const im = (s) => new A.ImmutableString(s);
parentPort.on("message", ({ jobs }) => {
  const results = [];
  const transfer = [];
  for (const { id, root, actor } of jobs) {
    try {
      const doc = A.init({ actor });
      const value = { v: workerData.version, id: im(root.id), status: im(root.status), spec: im(root.spec), events: root.events.map(im) };
      if (root.run !== undefined) value.run = im(root.run);
      const h = A.getBackend(doc);
      h.initRootFromHydrate(value);
      h.commit(null, Math.floor(Date.now() / 1000));
      const bytes = h.saveNoCompress();
      results.push({ id, bytes, heads: A.getHeads(doc) });
      transfer.push(bytes.buffer);
      A.free(doc);
    } catch (err) {
      results.push({ id, error: String(err && err.message || err) });
    }
  }
  parentPort.postMessage({ results }, transfer);
});
`;

interface Job {
  id: number;
  root: TaskDocRoot;
  actor: string;
}

type Result = { id: number; bytes: Uint8Array; heads: A.Heads } | { id: number; error: string };

/**
 * Builds on a worker thread, so that the Automerge work of materialising task
 * documents (most of a short task's cost) runs beside the engine instead of
 * within it. Builds requested in one turn of the event loop travel as one
 * message. The worker starts on first use and does not keep the process alive.
 */
export class WorkerTaskDocBuilder implements TaskDocBuilder {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: (built: BuiltTaskDoc) => void; reject: (err: unknown) => void }>();
  private batch: Job[] = [];
  private nextId = 0;

  build(root: TaskDocRoot, actor: string): Promise<BuiltTaskDoc> {
    const id = this.nextId++;
    return new Promise<BuiltTaskDoc>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.batch.push({ id, root, actor });
      if (this.batch.length === 1) queueMicrotask(() => this.send());
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
    this.failAll(new CoderClawError("SHUTTING_DOWN", "task document builder closed"));
  }

  private send(): void {
    const jobs = this.batch;
    this.batch = [];
    this.start().postMessage({ jobs });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const automerge = createRequire(import.meta.url).resolve("@automerge/automerge");
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { automerge, version: TASK_DOC_VERSION } });
    worker.unref();
    worker.on("message", ({ results }: { results: Result[] }) => {
      for (const r of results) {
        const waiter = this.pending.get(r.id);
        if (!waiter) continue;
        this.pending.delete(r.id);
        if ("error" in r) waiter.reject(new CoderClawError("UNAVAILABLE", `task document could not be built: ${r.error}`));
        else waiter.resolve({ bytes: r.bytes, heads: r.heads });
      }
    });
    worker.on("error", (err) => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(err);
    });
    worker.on("exit", () => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(new CoderClawError("UNAVAILABLE", "task document builder exited"));
    });
    this.worker = worker;
    return worker;
  }

  private failAll(err: unknown): void {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiters) w.reject(err);
  }
}
