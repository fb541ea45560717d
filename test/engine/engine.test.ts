import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createBuiltinRegistry, StaticAgentRegistry } from "../../src/agents/builtin.js";
import { createCommandAgent } from "../../src/agents/command-agent.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { parseAgentsConfig } from "../../src/config/agents-config.js";
import { hasCode } from "../../src/contract/errors.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { resolveDataDir } from "../../src/runtime/data-dir.js";
import { openLocalCore, type LocalCore, type LocalContext } from "../../src/runtime/local-core.js";
import { ExecutionController, settle } from "../helpers/controlled-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function core(context: LocalContext = {}): Promise<{ core: LocalCore; dir: string }> {
  const dir = tempDir();
  const c = await openLocalCore({ dataDir: dir.path, shutdownGraceMs: 50, ...context });
  cleanups.push(() => dir.remove(), () => c.close());
  return { core: c, dir: dir.path };
}

async function waitFor(pred: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("task engine", () => {
  it("never runs more than maxConcurrentTasks at once and starts queued tasks in order", async () => {
    const ctl = new ExecutionController();
    const { core: c } = await core({ agents: new StaticAgentRegistry([ctl.agent("ctl", true)]), maxConcurrentTasks: 3 });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await c.engine.submit({ description: `q${i}`, input: "x", agentId: "ctl" })).id);
    await settle();
    expect(ids.map((id) => ctl.isExecuting(id))).toEqual([true, true, true, false, false, false, false]);
    expect(c.engine.counters().queuedTasks).toBe(4);
    ctl.complete(ids[1]!);
    await settle();
    expect(ids.map((id) => ctl.isExecuting(id))).toEqual([true, false, true, true, false, false, false]);
  });

  it("writes quick tasks that start when an earlier write completes once more, already ended", async () => {
    const { core: c } = await core({ maxConcurrentTasks: 100 });
    // The session's workspace is made once, by its first task, off the event loop: on a loaded machine that took
    // longer than a turn, and the tasks waiting for it were still running when the next write was taken.
    const warmUp = await c.engine.submit({ description: "makes the workspace", input: "x", agentId: "echo" });
    await waitFor(async () => (await c.engine.getTask(warmUp.id))?.status === "completed");
    await c.engine.listTasks();
    const written: string[] = [];
    const persist = c.repository.persist.bind(c.repository);
    c.repository.persist = (changes) => {
      for (const change of changes) if (change.record.request.description.startsWith("first")) written.push(change.record.state.status);
      return persist(changes);
    };
    const first = Array.from({ length: 50 }, (_, i) => c.engine.submit({ description: `first ${i}`, input: "x", agentId: "echo" }, { admitted: Promise.resolve() }));
    // The first write is under way; this task's write queues behind it, and the first fifty start and end as it completes.
    await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
    const late = c.engine.submit({ description: "late", input: "x", agentId: "echo" });
    const tasks = await Promise.all([...first, late]);
    await waitFor(async () => (await Promise.all(tasks.map((t) => c.engine.getTask(t.id)))).every((t) => t?.status === "completed"));
    await c.engine.listTasks();
    expect(written.filter((s) => s === "pending")).toHaveLength(50);
    expect(written.filter((s) => s === "completed")).toHaveLength(50);
    expect(written.filter((s) => s !== "pending" && s !== "completed")).toEqual([]);
  });

  it("fails a task whose session workspace cannot be made, naming it, and makes it for the session's next task once it can", async () => {
    const { core: c, dir } = await core();
    const blocked = join(dir, "workspaces", "blocked");
    mkdirSync(join(dir, "workspaces"), { recursive: true });
    writeFileSync(blocked, "a file where the workspace directory goes");
    const first = await c.engine.submit({ description: "blocked", input: "x", agentId: "echo", sessionId: "blocked" });
    await waitFor(async () => (await c.engine.getTask(first.id))?.status === "failed");
    expect((await c.engine.getTask(first.id))?.error).toContain(blocked);
    rmSync(blocked);
    const second = await c.engine.submit({ description: "unblocked", input: "y", agentId: "echo", sessionId: "blocked" });
    await waitFor(async () => (await c.engine.getTask(second.id))?.status === "completed");
    expect(statSync(blocked).isDirectory()).toBe(true);
  });

  it("fails a task that exceeds its timeout, aborting the executor", async () => {
    const slow: AgentExecutor = {
      info: { id: "slow", name: "slow", description: "", capabilities: [] },
      resumable: false,
      retryable: false,
      timeoutMs: 50,
      availability: () => ({ available: true }),
      execute: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(new Error("aborted")))),
    };
    const { core: c } = await core({ agents: new StaticAgentRegistry([slow]) });
    const t = await c.engine.submit({ description: "slow", input: "x", agentId: "slow" });
    await waitFor(async () => (await c.engine.getTask(t.id))?.status === "failed");
    expect((await c.engine.getTask(t.id))?.error).toBe("timed out after 50 ms");
    const events = await c.engine.getTaskEvents(t.id);
    expect(events.map((e) => e.type)).toEqual(["created", "status_changed", "status_changed", "error_set", "status_changed"]);
  });

  it("pauses a running task at its next checkpoint and resumes it", async () => {
    const { core: c } = await core();
    const t = await c.engine.submit({ description: "sleep", input: "300 30", agentId: "sleep" });
    await waitFor(async () => ((await c.engine.getTask(t.id))?.progress ?? 0) > 0);
    await c.engine.pause(t.id);
    await new Promise((r) => setTimeout(r, 60));
    const paused = await c.engine.getTask(t.id);
    await new Promise((r) => setTimeout(r, 100));
    const stillPaused = await c.engine.getTask(t.id);
    expect(stillPaused?.status).toBe("waiting");
    expect(stillPaused?.progress).toBe(paused?.progress);
    await c.engine.resume(t.id);
    await waitFor(async () => (await c.engine.getTask(t.id))?.status === "completed");
    const statuses = (await c.engine.getTaskEvents(t.id)).filter((e) => e.type === "status_changed").map((e) => e.status);
    expect(statuses).toEqual(["planning", "running", "waiting", "running", "completed"]);
  });

  it("refuses illegal transitions with a typed error and writes nothing", async () => {
    const { core: c } = await core();
    const t = await c.engine.submit({ description: "echo", input: "x", agentId: "echo" });
    await waitFor(async () => (await c.engine.getTask(t.id))?.status === "completed");
    const before = await c.engine.getTaskEvents(t.id);
    const err = await c.engine.pause(t.id).catch((e: unknown) => e);
    expect(hasCode(err, "INVALID_TRANSITION")).toBe(true);
    expect(await c.engine.getTaskEvents(t.id)).toEqual(before);
  });

  it("shuts down gracefully: refuses new work, interrupts non-resumable tasks, keeps queued ones pending for the next start", async () => {
    const ctl = new ExecutionController();
    const agents = new StaticAgentRegistry([ctl.agent("keep", true), ctl.agent("drop", false)]);
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    let c = await openLocalCore({ dataDir: dir.path, agents, maxConcurrentTasks: 2, shutdownGraceMs: 50 });
    const keep = await c.engine.submit({ description: "keep", input: "x", agentId: "keep" });
    const drop = await c.engine.submit({ description: "drop", input: "x", agentId: "drop" });
    const queued = await c.engine.submit({ description: "queued", input: "x", agentId: "keep" });
    await settle();
    const closing = c.close();
    const refused = await c.engine.submit({ description: "late", input: "x", agentId: "keep" }).catch((e: unknown) => e);
    expect(hasCode(refused, "SHUTTING_DOWN")).toBe(true);
    await closing;

    ctl.reset();
    c = await openLocalCore({ dataDir: dir.path, agents, maxConcurrentTasks: 2, shutdownGraceMs: 50 });
    cleanups.push(() => c.close());
    expect((await c.engine.getTask(drop.id))?.error).toBe("interrupted by shutdown");
    await settle();
    expect((await c.engine.getTask(keep.id))?.status).toBe("running");
    expect(ctl.isExecuting(keep.id)).toBe(true);
    expect(ctl.isExecuting(queued.id)).toBe(true);
    expect(ctl.starts.get(keep.id)).toBe(2);
    expect(await c.engine.getTaskEvents(keep.id)).toEqual(expect.arrayContaining([expect.objectContaining({ message: "resumed after restart" })]));
  });

  it("refuses an unavailable agent at submit with its reason", async () => {
    const gone: AgentExecutor = {
      info: { id: "gone", name: "gone", description: "", capabilities: [] },
      resumable: false,
      retryable: false,
      availability: () => ({ available: false, reason: "binary not found on PATH: gone" }),
      execute: () => Promise.reject(new Error("unreachable")),
    };
    const { core: c } = await core({ agents: createBuiltinRegistry([gone]) });
    const err = await c.engine.submit({ description: "d", input: "x", agentId: "gone" }).catch((e: unknown) => e);
    expect(hasCode(err, "AGENT_UNAVAILABLE")).toBe(true);
    expect((err as Error).message).toContain("binary not found on PATH: gone");
    expect(c.engine.counters().totalTasks).toBe(0);
  });

  it("rebuilds its indexes from the task documents alone", async () => {
    const { core: c } = await core();
    for (let i = 0; i < 5; i++) await c.engine.submit({ description: `r${i}`, input: "x", agentId: "echo", sessionId: i % 2 ? "odd" : "even" });
    await c.engine.idle();
    const before = { all: await c.engine.listTasks(), odd: await c.engine.listTasks({ sessionId: "odd" }), done: await c.engine.listTasks({ status: "completed" }) };
    expect(await c.repository.rebuildIndexes()).toBe(5);
    expect(await c.engine.listTasks()).toEqual(before.all);
    expect(await c.engine.listTasks({ sessionId: "odd" })).toEqual(before.odd);
    expect(await c.engine.listTasks({ status: "completed" })).toEqual(before.done);
  });

  it("refuses a corrupt data directory with an error naming its path instead of starting fresh", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const c = await openLocalCore({ dataDir: dir.path });
    await c.engine.submit({ description: "d", input: "x" });
    await c.close();
    const dbDir = join(dir.path, "db");
    for (const f of readdirSync(dbDir)) if (f.startsWith("MANIFEST")) writeFileSync(join(dbDir, f), "not a manifest");
    const err = await openLocalCore({ dataDir: dir.path }).catch((e: unknown) => e);
    expect(hasCode(err, "STORAGE_CORRUPT")).toBe(true);
    expect((err as Error).message).toContain(dbDir);
  });

  it("refuses a data directory in use by another runtime with STORAGE_LOCKED", async () => {
    const { dir } = await core();
    const err = await openLocalCore({ dataDir: dir }).catch((e: unknown) => e);
    expect(hasCode(err, "STORAGE_LOCKED")).toBe(true);
    expect((err as Error).message).toContain(dir);
  });

  it("resolves the data directory from the option, then CODERCLAW_HOME, then ~/.coderclaw", () => {
    expect(resolveDataDir("/x/y", { CODERCLAW_HOME: "/env" })).toBe("/x/y");
    expect(resolveDataDir(undefined, { CODERCLAW_HOME: "/env" })).toBe("/env");
    expect(resolveDataDir(undefined, {})).toMatch(/\.coderclaw$/);
  });
});

describe("work from another device on a node without bubblewrap", () => {
  it("is refused when submitted, before anything is stored, for every agent that runs processes; the node's own work and process-free agents run", async () => {
    const yaml = ["agents:", "  - id: cmd", "    name: Cmd", "    description: d", "    capabilities: [code-creation]", "    command: [sh, -c, 'echo \"$1\"', sh, '{input}']", "    input: arg"].join("\n");
    const command = createCommandAgent(parseAgentsConfig(yaml, { path: "runtime.yaml", kind: "runtime" }).agents[0]!);
    const { core: c } = await core({ agents: createBuiltinRegistry([command, createShellAgent()]), sandbox: { mode: "required", bwrap: "/nonexistent/bwrap" } });
    for (const agentId of ["cmd", "shell"]) {
      const err = await c.engine.submit({ description: "remote", input: "hi", agentId }, { submittedBy: "peer-1" }).catch((e: unknown) => e);
      expect(hasCode(err, "UNAVAILABLE")).toBe(true);
      expect((err as Error).message).toMatch(/\/nonexistent\/bwrap is not installed: install it \(apt-get install bubblewrap\) or set security\.sandbox: off/);
    }
    expect(await c.engine.listTasks()).toEqual([]);
    const remoteEcho = await c.engine.submit({ description: "remote echo", input: "hi", agentId: "echo" }, { submittedBy: "peer-1" });
    const local = await c.engine.submit({ description: "local", input: "hi", agentId: "cmd" });
    await waitFor(async () => (await c.engine.getTask(remoteEcho.id))?.status === "completed" && (await c.engine.getTask(local.id))?.status === "completed");
    expect((await c.engine.getTask(local.id))?.output).toBe("hi\n");
  });
});
