import { afterEach, describe, expect, it } from "vitest";
import { openLocalCore } from "../../src/runtime/local-core.js";
import { checkWorkflow, documentWorkflowStore } from "../../src/workflows/index.js";
import { newWorkflowRecord } from "../../src/workflows/workflow-record.js";
import { WORKFLOW_PREFIX } from "../../src/workflows/workflow-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("workflow documents", () => {
  it("hold no value for a step until it changes, and read back every step of the definition", async () => {
    const dir = tempDir("cc-wf-store-");
    cleanups.push(dir.remove);
    const core = await openLocalCore({ dataDir: dir.path });
    cleanups.push(() => core.close());
    const store = documentWorkflowStore(core.store);
    const definition = checkWorkflow({ name: "three", steps: [{ id: "a", agent: "echo", input: "a" }, { id: "b", agent: "echo", input: "b", dependsOn: ["a"] }, { id: "c", agent: "echo", input: "c", dependsOn: ["a"] }] });
    const record = newWorkflowRecord("w1", definition, "in", 1000);
    await store.create(record);
    const raw = (await core.store.get<{ steps: Record<string, unknown> }>(`${WORKFLOW_PREFIX}w1`))!;
    expect(Object.keys(raw.steps)).toEqual([]);
    expect(await store.get("w1")).toEqual(record);

    const b = { status: "completed" as const, attempts: [{ n: 1, key: "w1/b/1", startedAt: 1001, taskId: "t", outcome: "completed" as const, endedAt: 1002 }], output: "B" };
    await store.update("w1", { steps: { b } });
    const read = await store.get("w1");
    expect(read?.steps).toEqual({ a: { status: "pending", attempts: [] }, b, c: { status: "pending", attempts: [] } });
    expect(Object.keys((await core.store.get<{ steps: Record<string, unknown> }>(`${WORKFLOW_PREFIX}w1`))!.steps)).toEqual(["b"]);
  });
});
