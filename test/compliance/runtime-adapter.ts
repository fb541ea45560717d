import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskUpdateEvent, TransportAdapter } from "../../src/contract/types.js";
import { TASK_STATUSES } from "../../src/contract/types.js";

/** What a compliance run needs: a fresh adapter whose node runs the built-in `echo` and `sleep` agents. */
export interface AdapterFixture {
  adapter: TransportAdapter;
  /** Stop servers/nodes and remove temporary state. */
  cleanup(): Promise<void>;
}

const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";
/** A well-formed peer id that no test mesh has as a member. */
const STRANGER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

async function collect(stream: AsyncIterable<TaskUpdateEvent>): Promise<TaskUpdateEvent[]> {
  const out: TaskUpdateEvent[] = [];
  for await (const u of stream) out.push(u);
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (err === undefined) return undefined;
  return err instanceof CoderClawError ? err.code : `not a CoderClawError: ${String(err)}`;
}

/**
 * The runtime-adapter contract: every TransportAdapter (local, HTTP, mesh) must
 * pass this same suite. `makeFixture` is called once per suite.
 */
export function runtimeAdapterCompliance(name: string, makeFixture: () => Promise<AdapterFixture>): void {
  describe(`runtime adapter compliance: ${name}`, () => {
    let fixture: AdapterFixture;
    let adapter: TransportAdapter;

    beforeAll(async () => {
      fixture = await makeFixture();
      adapter = fixture.adapter;
    });
    afterAll(async () => {
      await fixture?.cleanup();
    });

    it("submits a task and returns its pending state with a UUID id", async () => {
      const task = await adapter.submitTask({ description: "Implement feature X", input: "Add authentication to the API", agentId: "echo" });
      expect(task.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(TASK_STATUSES).toContain(task.status);
      expect(task.description).toBe("Implement feature X");
      expect(task.createdAt).toBeInstanceOf(Date);
    });

    it("streams updates through to completion and ends after the terminal status", async () => {
      const task = await adapter.submitTask({ description: "echo", input: "hello compliance", agentId: "echo" });
      const updates = await collect(adapter.streamTaskUpdates(task.id));
      expect(updates.at(-1)?.status).toBe("completed");
      expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => i + 1));
      for (const u of updates) {
        expect(u.taskId).toBe(task.id);
        expect(u.timestamp).toBeInstanceOf(Date);
      }
      const state = await adapter.getTaskState(task.id);
      expect(state?.status).toBe("completed");
      expect(state?.output).toBe("hello compliance");
      expect(state?.completedAt).toBeInstanceOf(Date);
    });

    it("replays the whole history to a stream opened after the task ended, and resumes after a sequence number", async () => {
      const task = await adapter.submitTask({ description: "echo", input: "replay", agentId: "echo" });
      const first = await collect(adapter.streamTaskUpdates(task.id));
      const replay = await collect(adapter.streamTaskUpdates(task.id));
      expect(replay.map((u) => [u.seq, u.status])).toEqual(first.map((u) => [u.seq, u.status]));
      const tail = await collect(adapter.streamTaskUpdates(task.id, { afterSeq: 2 }));
      expect(tail.map((u) => u.seq)).toEqual(first.filter((u) => u.seq! > 2).map((u) => u.seq));
    });

    it("reports progress of a running task and cancels it, ending its stream with cancelled", async () => {
      const task = await adapter.submitTask({ description: "sleep", input: "20000 200", agentId: "sleep" });
      const seen: TaskUpdateEvent[] = [];
      let cancelled = false;
      for await (const u of adapter.streamTaskUpdates(task.id)) {
        seen.push(u);
        // Updates recorded before the cancel took effect may still arrive: cancel once.
        if (!cancelled && u.status === "running" && u.progress !== undefined && u.progress > 0) {
          cancelled = true;
          expect(await adapter.cancelTask(task.id)).toBe(true);
        }
      }
      expect(seen.at(-1)?.status).toBe("cancelled");
      expect((await adapter.getTaskState(task.id))?.status).toBe("cancelled");
      expect(await adapter.cancelTask(task.id)).toBe(false);
    });

    it("refuses bad input with INVALID_INPUT naming the field, and persists nothing", async () => {
      const before = (await adapter.getStatus()).totalTasks;
      expect(await codeOf(adapter.submitTask({ description: "", input: "x" }))).toBe("INVALID_INPUT");
      expect(await codeOf(adapter.submitTask({ input: "x" } as never))).toBe("INVALID_INPUT");
      expect(await codeOf(adapter.submitTask({ description: "d" } as never))).toBe("INVALID_INPUT");
      expect(await codeOf(adapter.submitTask({ description: "d", input: "x".repeat(1024 * 1024 + 1) }))).toBe("INVALID_INPUT");
      const err = await adapter.submitTask({ description: "d", input: 5 as never }).catch((e: unknown) => e);
      expect((err as { field?: string }).field).toBe("input");
      expect((await adapter.getStatus()).totalTasks).toBe(before);
    });

    it("refuses a request that is not an object with INVALID_INPUT, and persists nothing", async () => {
      const before = (await adapter.getStatus()).totalTasks;
      for (const request of [null, "a task", 7, []]) {
        expect(await codeOf(adapter.submitTask(request as never)), JSON.stringify(request)).toBe("INVALID_INPUT");
      }
      expect((await adapter.getStatus()).totalTasks).toBe(before);
    });

    it("refuses an unknown agent with UNKNOWN_AGENT when told not to wait for a member that has it", async () => {
      expect(await codeOf(adapter.submitTask({ description: "d", input: "x", agentId: "no-such-agent" }, { waitForPeer: false }))).toBe("UNKNOWN_AGENT");
    });

    it("takes no route, `auto` and `local` alike: the task runs to completion", async () => {
      for (const options of [undefined, { route: "auto" }, { route: "local" }]) {
        const input = `route ${options?.route ?? "none"}`;
        const task = await adapter.submitTask({ description: "routed", input, agentId: "echo" }, options);
        expect((await collect(adapter.streamTaskUpdates(task.id))).at(-1)?.status).toBe("completed");
        expect((await adapter.getTaskState(task.id))?.output).toBe(input);
      }
    });

    it("refuses a route to a peer it cannot run on, an empty and an overlong route with INVALID_INPUT on `route`, and persists nothing", async () => {
      const before = (await adapter.getStatus()).totalTasks;
      for (const route of [STRANGER, "", "x".repeat(129)]) {
        const err = await adapter.submitTask({ description: "d", input: "x", agentId: "echo" }, { route }).catch((e: unknown) => e);
        expect(err, `route ${JSON.stringify(route.slice(0, 20))}`).toBeInstanceOf(CoderClawError);
        expect((err as CoderClawError).code).toBe("INVALID_INPUT");
        expect((err as CoderClawError).field).toBe("route");
        expect((err as CoderClawError).message).toMatch(/^route: /);
      }
      expect((await adapter.getStatus()).totalTasks).toBe(before);
    });

    it("answers null for an unknown task, NOT_FOUND for its stream and cancel, INVALID_INPUT for a malformed id", async () => {
      expect(await adapter.getTaskState(UNKNOWN_ID)).toBeNull();
      expect(await codeOf(collect(adapter.streamTaskUpdates(UNKNOWN_ID)))).toBe("NOT_FOUND");
      expect(await codeOf(adapter.cancelTask(UNKNOWN_ID))).toBe("NOT_FOUND");
      expect(await codeOf(adapter.getTaskState("not-a-task-id"))).toBe("INVALID_INPUT");
    });

    it("lists tasks newest first, by status and by session", async () => {
      const a = await adapter.submitTask({ description: "list a", input: "a", agentId: "echo", sessionId: "compliance-list" });
      await collect(adapter.streamTaskUpdates(a.id));
      const b = await adapter.submitTask({ description: "list b", input: "b", agentId: "echo", sessionId: "compliance-list" });
      await collect(adapter.streamTaskUpdates(b.id));
      const bySession = await adapter.listTasks({ sessionId: "compliance-list" });
      expect(bySession.map((t) => t.id)).toEqual([b.id, a.id]);
      const completed = await adapter.listTasks({ status: "completed", limit: 1000 });
      expect(completed.map((t) => t.id)).toEqual(expect.arrayContaining([a.id, b.id]));
      expect(completed.every((t) => t.status === "completed")).toBe(true);
    });

    it("retries a failed or cancelled task as a new task naming it, and refuses to retry one that completed", async () => {
      if (!adapter.retryTask) throw new Error("retryTask is part of the contract every adapter offers");
      const failed = await adapter.submitTask({ description: "fails", input: "not a number", agentId: "sleep" }).catch(() => undefined);
      const cancelled = await adapter.submitTask({ description: "cancelled", input: "20000", agentId: "sleep" });
      expect(await adapter.cancelTask(cancelled.id)).toBe(true);
      for (const old of [cancelled, ...(failed === undefined ? [] : [failed])]) {
        await collect(adapter.streamTaskUpdates(old.id));
        const again = await adapter.retryTask(old.id);
        expect(again.id).not.toBe(old.id);
        expect(again.parentTaskId).toBe(old.id);
        expect(again.metadata?.retryOf).toBe(old.id);
        expect(again.description).toBe(old.description);
        await adapter.cancelTask(again.id);
      }
      const done = await adapter.submitTask({ description: "done", input: "x", agentId: "echo" });
      await collect(adapter.streamTaskUpdates(done.id));
      expect(await codeOf(adapter.retryTask(done.id))).toBe("INVALID_TRANSITION");
    });

    it("lists agents and skills, and reports status", async () => {
      const agents = await adapter.listAgents();
      expect(agents.map((a) => a.id)).toEqual(expect.arrayContaining(["echo", "sleep"]));
      for (const a of agents) expect(Array.isArray(a.capabilities)).toBe(true);
      expect(Array.isArray(await adapter.listSkills())).toBe(true);
      const status = await adapter.getStatus();
      expect(status.healthy).toBe(true);
      expect(status.totalTasks).toBeGreaterThan(0);
      expect(typeof status.version).toBe("string");
      expect(status.uptime).toBeGreaterThanOrEqual(0);
    });

    it("serves many concurrent submissions and streams", async () => {
      const tasks = await Promise.all(Array.from({ length: 20 }, (_, i) => adapter.submitTask({ description: `c${i}`, input: `v${i}`, agentId: "echo" })));
      const ends = await Promise.all(tasks.map(async (t) => (await collect(adapter.streamTaskUpdates(t.id))).at(-1)?.status));
      expect(ends).toEqual(tasks.map(() => "completed"));
    });
  });
}
