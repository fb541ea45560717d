import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import type { TaskEvent, TaskState } from "../../src/contract/types.js";
import { encodeTaskDoc, readTaskDoc, taskDocRoot, updateTaskDoc, type TaskDoc, type TaskRecord } from "../../src/engine/task-document.js";

const actor = "ab".repeat(16);
const at = new Date(1_700_000_000_000);
const event = (seq: number, type: TaskEvent["type"], status: TaskState["status"], message?: string): TaskEvent => ({ seq, type, status, timestamp: at, ...(message !== undefined && { message }) });

function running(): TaskRecord {
  const state: TaskState = { id: "0190a000-0000-7000-8000-000000000001", status: "running", description: "d", createdAt: at, startedAt: at };
  return { request: { description: "d", input: "i" }, state, events: [event(1, "created", "pending"), event(2, "status_changed", "running"), event(3, "output_added", "running", "line 1\n")] };
}

const load = (record: TaskRecord): A.Doc<TaskDoc> => A.load<TaskDoc>(encodeTaskDoc(taskDocRoot(record), actor).bytes);
const runOf = (doc: A.Doc<TaskDoc>): Record<string, unknown> => JSON.parse(String(A.view(doc, A.getBackend(doc).getHeads()).run)) as Record<string, unknown>;

describe("a task's output in its document", () => {
  it("is held once when it is what the task's output events say: its history holds it, and reading puts it back", () => {
    const record = running();
    const doc = load(record);
    const done: TaskState = { ...record.state, status: "completed", completedAt: at, output: "line 1\nline 2\n" };
    updateTaskDoc(doc, record.state, done, [event(4, "output_added", "running", "line 2\n"), event(5, "status_changed", "completed")]);
    const run = runOf(doc);
    expect(run.output).toBeUndefined();
    expect(run.outputInHistory).toBe(true);
    const read = readTaskDoc(A.load<TaskDoc>(A.save(doc)));
    expect(read.state.output).toBe("line 1\nline 2\n");
    expect(read.events).toHaveLength(5);
  });

  it("is held as it is when it differs from the output events (an agent that answers with something else), or when there are none", () => {
    const record = running();
    const doc = load(record);
    const done: TaskState = { ...record.state, status: "completed", completedAt: at, output: "the answer" };
    updateTaskDoc(doc, record.state, done, [event(4, "status_changed", "completed")]);
    expect(runOf(doc).output).toBe("the answer");
    expect(readTaskDoc(A.load<TaskDoc>(A.save(doc))).state.output).toBe("the answer");

    // A whole record written at once (from its write-ahead record) is judged the same way.
    const whole: TaskRecord = { ...record, state: { ...done, output: "line 1\n" }, events: [...record.events, event(4, "status_changed", "completed")] };
    const written = load(whole);
    expect(runOf(written).outputInHistory).toBe(true);
    expect(readTaskDoc(written).state.output).toBe("line 1\n");
    const empty = load({ ...whole, state: { ...whole.state, output: "" }, events: whole.events.filter((e) => e.type !== "output_added") });
    expect(readTaskDoc(empty).state.output).toBe("");
  });
});
