import { afterEach, describe, expect, it } from "vitest";
import { createEchoAgent, StaticAgentRegistry } from "../../src/agents/builtin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { TaskEngine } from "../../src/engine/task-engine.js";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Reports 1..99 as bare numbers in a burst, then one step with a message, more bare numbers over a pause, and ends. */
const chatty: AgentExecutor = {
  info: { id: "chatty", name: "chatty", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    for (let i = 1; i < 60; i++) ctx.progress(i);
    ctx.progress(60, "halfway");
    for (let i = 61; i < 80; i++) ctx.progress(i);
    await new Promise((r) => setTimeout(r, 120));
    for (let i = 80; i <= 97; i++) ctx.progress(i);
    return { output: "done" };
  },
};

async function engine(): Promise<TaskEngine> {
  const dir = tempDir();
  const db = await openDatabase(dir.path);
  const repository = await LevelTaskRepository.open(db, new LevelDocumentStore(db, { path: dir.path }));
  const e = await TaskEngine.open({ repository, agents: new StaticAgentRegistry([createEchoAgent(), chatty]), dataDir: dir.path, progressCoalesceMs: 50 });
  cleanups.push(() => dir.remove(), () => db.close(), () => e.shutdown());
  return e;
}

describe("progress under load", () => {
  it("a burst of bare numbers becomes one entry per window with the latest value; a message is recorded at once, in order; the last value is on record before the end", async () => {
    const e = await engine();
    const task = await e.submit({ description: "chatty", input: "", agentId: "chatty" });
    for await (const _ of e.streamEvents(task.id));
    const events = await e.getTaskEvents(task.id);
    const progress = events.filter((ev) => ev.type === "progress_updated").map((ev) => `${ev.progress}${ev.message === undefined ? "" : ` ${ev.message}`}`);
    // 96 reports: 59 bare (flushed by the message), the message, 19 bare (one window), 18 bare (flushed by the end).
    expect(progress).toEqual(["59", "60 halfway", "79", "97"]);
    expect(events.at(-1)).toMatchObject({ type: "status_changed", status: "completed" });
    const seqs = events.map((ev) => ev.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });
});
