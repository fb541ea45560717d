import * as A from "@automerge/automerge";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TASK_STATUSES, type TaskEvent, type TaskState } from "../../src/contract/types.js";
import { encodeTaskDoc, readTaskDoc, taskDocRoot, updateTaskDoc, type TaskDoc, type TaskRecord } from "../../src/engine/task-document.js";

const text = fc.string({ unit: "grapheme", maxLength: 40 });
const date = fc.integer({ min: 0, max: 4_000_000_000_000 }).map((ms) => new Date(ms));
const eventArb: fc.Arbitrary<TaskEvent> = fc
  .record({
    type: fc.constantFrom("created" as const, "status_changed" as const, "progress_updated" as const, "output_added" as const, "error_set" as const),
    timestamp: date,
    status: fc.constantFrom(...TASK_STATUSES),
    message: fc.option(text, { nil: undefined }),
    progress: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
  })
  .map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) as unknown as TaskEvent);
const recordArb: fc.Arbitrary<TaskRecord> = fc
  .record({
    id: fc.uuid(),
    status: fc.constantFrom(...TASK_STATUSES),
    description: text,
    input: fc.string({ maxLength: 2000 }),
    createdAt: date,
    agentId: fc.option(text, { nil: undefined }),
    sessionId: fc.option(text, { nil: undefined }),
    output: fc.option(fc.string({ maxLength: 500 }), { nil: undefined }),
    progress: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
    events: fc.array(eventArb, { maxLength: 6 }),
  })
  .map((r) => {
    const state: TaskState = { id: r.id, status: r.status, description: r.description, createdAt: r.createdAt };
    if (r.agentId !== undefined) state.agentId = r.agentId;
    if (r.sessionId !== undefined) state.sessionId = r.sessionId;
    if (r.output !== undefined) state.output = r.output;
    if (r.progress !== undefined) state.progress = r.progress;
    const request: TaskRecord["request"] = { description: r.description, input: r.input };
    if (r.agentId !== undefined) request.agentId = r.agentId;
    if (r.sessionId !== undefined) request.sessionId = r.sessionId;
    return { request, state, events: r.events.map((e, i) => ({ ...e, seq: i + 1 })) };
  });

const actor = "5c".repeat(16);

describe("task documents encoded as one change", () => {
  it("load as documents that read back as the record, with the heads the encoder computed", () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        const encoded = encodeTaskDoc(taskDocRoot(record), actor);
        const doc = A.load<TaskDoc>(encoded.bytes);
        expect(A.getHeads(doc)).toEqual(encoded.heads);
        expect(readTaskDoc(doc)).toEqual(record);
        A.free(doc);
      }),
      { numRuns: 200 },
    );
  });

  it("take later changes like any document, and hold several history entries in order", () => {
    const [record] = fc.sample(recordArb, { numRuns: 1, seed: 7 });
    const root = { ...taskDocRoot(record!), events: ['[{"seq":1}]', '[{"seq":2}]', '[{"seq":3}]'] };
    const doc = A.load<TaskDoc>(encodeTaskDoc(root, actor).bytes);
    expect(A.toJS(doc).events.map(String)).toEqual(root.events);
    const next: TaskState = { ...record!.state, status: "completed", output: "done" };
    const updated = updateTaskDoc(doc, record!.state, next, []);
    const reloaded = A.load<TaskDoc>(A.save(updated));
    expect(String(A.toJS(reloaded).status)).toBe("completed");
    expect(A.getHeads(reloaded)).toHaveLength(1);
  });
});
