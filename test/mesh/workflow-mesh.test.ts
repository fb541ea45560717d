import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import type { WorkflowRecord } from "../../src/workflows/index.js";
import { assertBuilt } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `append` records the first line of its input in a file after a while (a side effect a second run would repeat) and answers with its input. */
const agents = (file: string): string => `security:
  sandbox: off
agents:
  - id: append
    name: append
    description: records its input's first line, then answers with the input
    capabilities: [demo]
    command: [sh, -c, 'input=$(cat); sleep 1; printf "%s\\n" "$input" | head -n 1 >> ${file}; printf "done:%s" "$input"']
    input: stdin
`;

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

describe("a workflow across three nodes (separate processes)", () => {
  it("fans out to two executors and joins; its coordinator SIGKILLed while the fan-out runs, restarted, completes it: the join sees all three outputs, each step's side effect once", async () => {
    const homes = ["a", "b", "c"].map((n) => tempDir(`cc-wfm-${n}-`));
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb, hc] = homes.map((h) => h.path) as [string, string, string];
    const effects = { b: join(hb, "effects.txt"), c: join(hc, "effects.txt") };
    for (const [h, file] of [[hb, effects.b], [hc, effects.c]] as const) {
      mkdirSync(join(h, ".coderClaw"));
      writeFileSync(join(h, ".coderClaw", "runtime.yaml"), agents(file));
    }
    const lease = ["--lease-timeout", "1500"];
    let a: NodeProcess = await startNodeProcess(ha, lease);
    const b = await startNodeProcess(hb, lease);
    const c = await startNodeProcess(hc, lease);
    cleanups.push(() => a.stop(), () => b.stop(), () => c.stop());
    await a.client.admin("mesh.create", { name: "workflows" });
    for (const x of [b, c]) {
      const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
      await x.client.admin("mesh.join", { invite });
    }

    const on = (p: NodeProcess): string => `remote:${p.deviceId}`;
    const step = (id: string, target: string, input: string, dependsOn: string[] = []): string[] => [`  - id: ${id}`, "    agent: append", `    target: ${target}`, `    input: "${input}"`, ...(dependsOn.length > 0 ? [`    dependsOn: [${dependsOn.join(", ")}]`] : [])];
    const text = [
      "name: fan-out and join",
      "steps:",
      ...step("plan", on(b), "plan ${input}"),
      ...step("x", on(b), "x after ${steps.plan.output}", ["plan"]),
      ...step("y", on(c), "y after ${steps.plan.output}", ["plan"]),
      ...step("z", on(c), "z after ${steps.plan.output}", ["plan"]),
      ...step("join", on(b), "join [${steps.x.output}] [${steps.y.output}] [${steps.z.output}]", ["x", "y", "z"]),
      "",
    ].join("\n");
    const { id } = (await a.client.admin("workflow.start", { file: "fan.yaml", text, input: "release" })) as { id: string };
    const get = async (): Promise<WorkflowRecord> => (await a.client.admin("workflow.get", { id })) as WorkflowRecord;
    await eventually(async () => {
      const r = await get();
      return ["x", "y", "z"].every((s) => r.steps[s]!.status === "running");
    }, 30_000, "the fan-out running");
    await a.kill();

    a = await startNodeProcess(ha, [...lease, "--bootstrap", b.addr, "--bootstrap", c.addr]);
    await eventually(async () => (await get()).status !== "running", 60_000, async () => `the workflow ended (${JSON.stringify((await get()).steps)})`);
    const done = await get();
    expect(done.status, done.error).toBe("completed");
    const joined = done.steps.join!.output!;
    for (const s of ["x", "y", "z"]) expect(joined).toContain(`done:${s} after done:plan release`);
    // One side effect per step, on the node it was sent to.
    expect(lines(effects.b).sort()).toEqual(["join [done:x after done:plan release] [done:y after done:plan release] [done:z after done:plan release]", "plan release", "x after done:plan release"].sort());
    expect(lines(effects.c).sort()).toEqual(["y after done:plan release", "z after done:plan release"]);
    for (const s of Object.values(done.steps)) expect(s.attempts).toHaveLength(1);
  }, 180_000);
});
