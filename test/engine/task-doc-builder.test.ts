import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import type { TaskRecord } from "../../src/engine/task-document.js";
import { readTaskDoc, taskDocRoot, type TaskDoc } from "../../src/engine/task-document.js";
import { InlineTaskDocBuilder, WorkerTaskDocBuilder } from "../../src/engine/task-doc-builder.js";

const actor = "0123456789abcdef0123456789abcdef";

function record(n: number): TaskRecord {
  const createdAt = new Date(1_700_000_000_000 + n);
  return {
    request: { description: `task ${n}`, input: `input ${n}`, agentId: "echo", sessionId: "s-1", metadata: { n } },
    state: {
      id: `0190a000-0000-7000-8000-${n.toString().padStart(12, "0")}`,
      status: "completed",
      agentId: "echo",
      description: `task ${n}`,
      sessionId: "s-1",
      metadata: { n },
      createdAt,
      startedAt: createdAt,
      completedAt: createdAt,
      progress: 100,
      output: `input ${n}`,
    },
    events: [
      { seq: 1, type: "created", timestamp: createdAt, status: "pending", message: "task accepted" },
      { seq: 2, type: "status_changed", timestamp: createdAt, status: "completed", message: "completed", progress: 100, data: { n } },
    ],
  };
}

describe("task document builders", () => {
  it("the worker and the calling thread build documents that read back as the record", async () => {
    const worker = new WorkerTaskDocBuilder();
    const inline = new InlineTaskDocBuilder();
    try {
      const records = Array.from({ length: 50 }, (_, i) => record(i));
      const built = await Promise.all(records.map((r) => worker.build(taskDocRoot(r), actor)));
      const reference = await inline.build(taskDocRoot(records[0]!), actor);
      for (const [i, b] of built.entries()) {
        const doc = A.load<TaskDoc>(b.bytes);
        expect(A.getHeads(doc)).toEqual(b.heads);
        expect(A.getActorId(doc)).not.toBe(actor); // loading picks a fresh actor; the change itself carries ours
        expect(A.getHistory(doc)[0]?.change.actor).toBe(actor);
        expect(readTaskDoc(doc)).toEqual(records[i]);
      }
      expect(readTaskDoc(A.load<TaskDoc>(reference.bytes))).toEqual(readTaskDoc(A.load<TaskDoc>(built[0]!.bytes)));
    } finally {
      await worker.close();
    }
  });

  it("rejects builds pending when closed, and starts again on the next build", async () => {
    const worker = new WorkerTaskDocBuilder();
    const pending = worker.build(taskDocRoot(record(1)), actor);
    const closed = worker.close();
    await expect(pending).rejects.toMatchObject({ code: "SHUTTING_DOWN" });
    await closed;
    const again = await worker.build(taskDocRoot(record(2)), actor);
    expect(readTaskDoc(A.load<TaskDoc>(again.bytes)).state.id).toBe(record(2).state.id);
    await worker.close();
  });
});
