import * as A from "@automerge/automerge";
import { afterEach, describe, expect, it } from "vitest";
import { openLocalCore } from "../../src/runtime/local-core.js";
import { checkWorkflow, documentWorkflowStore } from "../../src/workflows/index.js";
import { newWorkflowRecord, type StepRecord } from "../../src/workflows/workflow-record.js";
import { WORKFLOW_LOG_COMPACT_AT, WORKFLOW_PREFIX, workflowContentProblem } from "../../src/workflows/workflow-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function openStore(options: { actor?: string } = {}) {
  const dir = tempDir("cc-wf-store-");
  cleanups.push(dir.remove);
  const core = await openLocalCore({ dataDir: dir.path });
  cleanups.push(() => core.close());
  return { core, store: documentWorkflowStore(core.store, options) };
}

const definition = checkWorkflow({ name: "three", steps: [{ id: "a", agent: "echo", input: "a" }, { id: "b", agent: "echo", input: "b", dependsOn: ["a"] }, { id: "c", agent: "echo", input: "c", dependsOn: ["a"] }] });
const done = (id: string, output: string): StepRecord => ({ status: "completed", attempts: [{ n: 1, key: `w1/${id}/1`, startedAt: 1001, taskId: "t", outcome: "completed", endedAt: 1002 }], output });
type RawDoc = { v: number; steps?: Record<string, A.ImmutableString>; log?: A.ImmutableString[] };

describe("workflow documents", () => {
  it("are made as one change of their writer, with the steps already under way, and never over a workflow that exists", async () => {
    const actor = "ab".repeat(16);
    const { core, store } = await openStore({ actor });
    const record = { ...newWorkflowRecord("w2", definition, "in", 1000), coordinator: "12D3KooWcoordinator", steps: { a: done("a", "A"), b: { status: "pending" as const, attempts: [] }, c: { status: "pending" as const, attempts: [] } } };
    await store.create(record);
    expect(await store.get("w2")).toEqual(record);
    const doc = (await core.store.get<RawDoc>(`${WORKFLOW_PREFIX}w2`))!;
    expect(A.getAllChanges(doc).map((c) => A.decodeChange(c).actor)).toEqual([actor]);

    await expect(store.create({ ...record, input: "other" })).rejects.toThrow(/exists already/);
    expect((await store.get("w2"))?.input).toBe("in");
  });

  it("hold no value for a step until it changes, and read back every step of the definition", async () => {
    const { core, store } = await openStore();
    const record = newWorkflowRecord("w1", definition, "in", 1000);
    await store.create(record);
    const raw = (await core.store.get<RawDoc>(`${WORKFLOW_PREFIX}w1`))!;
    expect(raw.log).toBeUndefined();
    expect(await store.get("w1")).toEqual(record);

    const b = done("b", "B");
    await store.update("w1", { steps: { b } });
    const read = await store.get("w1");
    expect(read?.steps).toEqual({ a: { status: "pending", attempts: [] }, b, c: { status: "pending", attempts: [] } });
  });

  it("leave memory once ended, and read back whole from storage", async () => {
    const { core, store } = await openStore();
    const cached = core.store.cachedCount();
    await store.create(newWorkflowRecord("w1", definition, "in", 1000));
    await store.update("w1", { steps: { a: done("a", "A") } });
    expect(core.store.cachedCount()).toBe(cached + 1);
    await store.update("w1", { status: "completed", endedAt: 1003, steps: { b: done("b", "B"), c: done("c", "C") } });
    expect(core.store.cachedCount()).toBe(cached);
    const read = await store.get("w1");
    expect(read?.status).toBe("completed");
    expect(read?.steps).toEqual({ a: done("a", "A"), b: done("b", "B"), c: done("c", "C") });
  });

  it("write the steps of one update as one value, and read later values over earlier ones", async () => {
    const { core, store } = await openStore();
    await store.create(newWorkflowRecord("w1", definition, "in", 1000));
    await store.update("w1", { steps: { a: { status: "running", attempts: [{ n: 1, key: "w1/a/1", startedAt: 1001 }] }, b: done("b", "early") } });
    await store.update("w1", { status: "completed", endedAt: 2000, steps: { a: done("a", "A"), c: done("c", "C") } });
    const raw = (await core.store.get<RawDoc>(`${WORKFLOW_PREFIX}w1`))!;
    expect(raw.log).toHaveLength(2);
    const read = await store.get("w1");
    expect(read).toMatchObject({ status: "completed", endedAt: 2000, steps: { a: done("a", "A"), b: done("b", "early"), c: done("c", "C") } });
  });

  it("replace a long log by one entry of every step, keeping what each step last was", async () => {
    const { core, store } = await openStore();
    await store.create(newWorkflowRecord("w1", definition, "in", 1000));
    const expected: Record<string, string> = {};
    for (let i = 0; i < WORKFLOW_LOG_COMPACT_AT + 5; i++) {
      const id = ["a", "b", "c"][i % 3]!;
      expected[id] = `out ${i}`;
      await store.update("w1", { steps: { [id]: done(id, `out ${i}`) } });
    }
    const raw = (await core.store.get<RawDoc>(`${WORKFLOW_PREFIX}w1`))!;
    expect(raw.log!.length).toBeLessThan(WORKFLOW_LOG_COMPACT_AT);
    expect(Object.fromEntries(Object.entries((await store.get("w1"))!.steps).map(([id, r]) => [id, r.output]))).toEqual(expected);
  });

  it("read a document of layout 1 (a value per step), and write on it in layout 2", async () => {
    const { core, store } = await openStore();
    const record = newWorkflowRecord("w1", definition, "in", 1000);
    const a = done("a", "A");
    await core.store.update<RawDoc & Record<string, unknown>>(`${WORKFLOW_PREFIX}w1`, () =>
      A.from({ v: 1, id: new A.ImmutableString("w1"), fixed: new A.ImmutableString(JSON.stringify({ definition, input: "in", createdAt: 1000 })), status: new A.ImmutableString("running"), steps: { a: new A.ImmutableString(JSON.stringify(a)) } }),
    );
    const raw = (await core.store.get<RawDoc & { fixed: A.ImmutableString; status: A.ImmutableString }>(`${WORKFLOW_PREFIX}w1`))!;
    expect(workflowContentProblem((k) => (k === "fixed" || k === "status" ? raw[k].toString() : k === "v" ? raw.v : undefined))).toBeUndefined();
    expect((await store.get("w1"))?.steps).toEqual({ ...record.steps, a });
    const b = done("b", "B");
    await store.update("w1", { steps: { b } });
    expect((await store.get("w1"))?.steps).toEqual({ ...record.steps, a, b });
    expect((await core.store.get<RawDoc>(`${WORKFLOW_PREFIX}w1`))!.v).toBe(2);
  });

  it("keep the definition as its draft, and refuse a received one that does not check, naming the field", async () => {
    const { core, store } = await openStore();
    await store.create(newWorkflowRecord("w1", definition, "in", 1000));
    const fixed = JSON.parse((await core.store.get<{ fixed: A.ImmutableString }>(`${WORKFLOW_PREFIX}w1`))!.fixed.toString()) as { draft: { steps: Array<Record<string, unknown>> } };
    expect(fixed.draft.steps[1]).toEqual({ id: "b", agent: "echo", input: "b", dependsOn: ["a"] });
    const root = (f: unknown) => (k: string) => (k === "v" ? 2 : k === "status" ? "running" : k === "fixed" ? JSON.stringify(f) : undefined);
    expect(workflowContentProblem(root(fixed))).toBeUndefined();
    fixed.draft.steps[1]!.dependsOn = ["c"];
    fixed.draft.steps[2]!.dependsOn = ["b"];
    expect(workflowContentProblem(root(fixed))).toMatch(/^fixed: draft: steps\[\d\]\.dependsOn: the steps depend on each other in a cycle/);
  });

  it("keep who started a workflow, and refuse a received starter of another shape rather than read it as no one", async () => {
    const { core, store } = await openStore();
    const record = newWorkflowRecord("w1", definition, "in", 1000, undefined, { subject: "alice", sessionId: "s1" });
    await store.create(record);
    expect((await store.get("w1"))?.startedBy).toEqual({ subject: "alice", sessionId: "s1" });
    const fixed = JSON.parse((await core.store.get<{ fixed: A.ImmutableString }>(`${WORKFLOW_PREFIX}w1`))!.fixed.toString()) as Record<string, unknown>;
    const root = (f: unknown) => (k: string) => (k === "v" ? 2 : k === "status" ? "running" : k === "fixed" ? JSON.stringify(f) : undefined);
    for (const startedBy of ["alice", { subject: 7 }, { subject: "alice", sessionId: null }, { subject: "alice", role: "admin" }]) {
      expect(workflowContentProblem(root({ ...fixed, startedBy }))).toMatch(/^fixed: startedBy is not/);
    }
  });
});
