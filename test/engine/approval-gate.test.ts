import { afterEach, describe, expect, it } from "vitest";
import { createEchoAgent, StaticAgentRegistry } from "../../src/agents/builtin.js";
import type { ApprovalPolicy, OpenGate } from "../../src/engine/approval-gate.js";
import { TaskEngine } from "../../src/engine/task-engine.js";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Every `echo` task with input starting `ask` waits for a decision. */
const policy: ApprovalPolicy = (request) => (request.input.startsWith("ask") ? { rule: "agentPolicies.echo", timeoutMs: 60_000 } : undefined);

async function open(path: string, asked: OpenGate[] = []): Promise<{ db: Database; engine: TaskEngine }> {
  const db = await openDatabase(path);
  const repository = await LevelTaskRepository.open(db, new LevelDocumentStore(db, { path }));
  const engine = await TaskEngine.open({ repository, agents: new StaticAgentRegistry([createEchoAgent()]), dataDir: path, approvalPolicy: policy, onApprovalNeeded: (g) => asked.push(g) });
  cleanups.push(async () => {
    if (db.status === "open") {
      await engine.shutdown();
      await db.close();
    }
  });
  return { db, engine };
}

async function ended(engine: TaskEngine, id: string): Promise<string> {
  for await (const _ of engine.streamEvents(id));
  return (await engine.getTask(id))!.status;
}

describe("the engine's approval gate", () => {
  it("keeps a task the policy names pending, durably, until a decision: approved it runs, denied it fails; others run at once", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const asked: OpenGate[] = [];
    const { engine } = await open(dir.path, asked);
    const free = await engine.submit({ description: "free", input: "hello", agentId: "echo" });
    const yes = await engine.submit({ description: "gated", input: "ask yes", agentId: "echo" });
    const no = await engine.submit({ description: "gated", input: "ask no", agentId: "echo" });
    expect(await ended(engine, free.id)).toBe("completed");
    expect(yes.status).toBe("pending");
    expect(asked.map((g) => g.taskId)).toEqual([yes.id, no.id]);
    expect(engine.openApprovals().map((g) => g.taskId)).toEqual([yes.id, no.id]);
    expect((await engine.getTask(yes.id))?.status).toBe("pending");

    expect(await engine.decideApproval(yes.id, { approved: true, by: "admin", reason: "fine" })).toBe(true);
    expect(await ended(engine, yes.id)).toBe("completed");
    expect(await engine.decideApproval(no.id, { approved: false, by: "admin", reason: "no" })).toBe(true);
    expect(await engine.getTask(no.id)).toMatchObject({ status: "failed", error: "approval denied by admin: no" });
    // Decided already: a second decision changes nothing.
    expect(await engine.decideApproval(no.id, { approved: true, by: "admin", reason: "" })).toBe(false);
    expect(engine.openApprovals()).toEqual([]);
  });

  it("after a crash a waiting task still waits (it is not run), and an approval then runs it once; a cancelled one waits no more", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    let p = await open(dir.path);
    const waits = await p.engine.submit({ description: "gated", input: "ask later", agentId: "echo" });
    const approved = await p.engine.submit({ description: "gated", input: "ask now", agentId: "echo" });
    const cancelled = await p.engine.submit({ description: "gated", input: "ask never", agentId: "echo" });
    await p.engine.cancel(cancelled.id);
    // Approved just before the crash: its approval is on record, so it runs after the restart.
    await p.engine.decideApproval(approved.id, { approved: true, by: "admin", reason: "" });
    // The crash: the database goes away with the engine holding live tasks; every batch so far is durable.
    await p.db.close();

    p = await open(dir.path);
    expect(p.engine.openApprovals().map((g) => ({ taskId: g.taskId, rule: g.rule }))).toEqual([{ taskId: waits.id, rule: "agentPolicies.echo" }]);
    expect((await p.engine.getTask(waits.id))?.status).toBe("pending");
    expect(await ended(p.engine, approved.id)).toBe("completed");
    expect((await p.engine.getTask(cancelled.id))?.status).toBe("cancelled");
    await p.engine.decideApproval(waits.id, { approved: true, by: "admin", reason: "" });
    expect(await ended(p.engine, waits.id)).toBe("completed");
    const starts = (await p.engine.getTaskEvents(waits.id)).filter((e) => e.type === "status_changed" && e.status === "running");
    expect(starts).toHaveLength(1);
  });
});
