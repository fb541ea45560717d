import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import type { WorkflowRecord } from "../../src/workflows/index.js";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `deploy` records its input in a file: a gated step that ran without approval shows there. */
const agents = (file: string): string => `security:
  sandbox: off
agents:
  - id: deploy
    name: deploy
    description: records its input
    capabilities: [demo]
    command: [sh, -c, 'cat >> ${file}; printf deployed']
    input: stdin
`;

describe("an approval across two node processes", () => {
  it("the owner SIGKILLed while a step waits for approval: restarted, it still waits on the same request, and an admin's approval from the other node's CLI runs the step once", async () => {
    const homes = ["a", "b"].map((n) => tempDir(`cc-appr-${n}-`));
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb] = homes.map((h) => h.path) as [string, string];
    const effects = join(hb, "effects.txt");
    mkdirSync(join(hb, ".coderClaw"));
    writeFileSync(join(hb, ".coderClaw", "runtime.yaml"), agents(effects));
    const a = await startNodeProcess(ha);
    let b: NodeProcess = await startNodeProcess(hb);
    cleanups.push(() => a.stop(), () => b.stop());
    await a.client.admin("mesh.create", { name: "approvals" });
    const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
    await b.client.admin("mesh.join", { invite });

    const text = ["name: gated deploy", "steps:", "  - id: ship", "    agent: deploy", '    input: "ship ${input}"', "    approval: required", "    approvalTimeout: 10m", ""].join("\n");
    // B's role grant comes with its certificate from A, applied once it arrived.
    let id = "";
    await eventually(async () => {
      id = ((await b.client.admin("workflow.start", { file: "gated.yaml", text, input: "v3" }).catch(() => ({ id: "" }))) as { id: string }).id;
      return id !== "";
    }, 20_000, "B may submit");
    const list = async (): Promise<Array<{ id: string }>> => (await b.client.admin("approval.list", {})) as Array<{ id: string }>;
    await eventually(async () => (await list()).length === 1, 20_000, "the request asked");
    const [request] = await list();
    await b.kill();

    b = await startNodeProcess(hb, ["--bootstrap", a.addr]);
    await eventually(async () => (await list()).length === 1, 20_000, "the request taken up again");
    expect((await list())[0]!.id).toBe(request!.id);
    const record = (await b.client.admin("workflow.get", { id })) as WorkflowRecord;
    expect(record.steps.ship).toMatchObject({ status: "pending", reason: "awaiting approval" });
    expect(existsSync(effects)).toBe(false);

    // The admin's node lists the request from the replicated workflow document, and decides it from its CLI.
    await eventually(async () => {
      const listed = await runCli(["approvals", "list", "--json"], ha);
      return listed.code === 0 && (JSON.parse(listed.stdout) as Array<{ id: string }>).some((x) => x.id === request!.id);
    }, 20_000, "the request listed on A");
    const approved = await runCli(["approvals", "approve", request!.id, "--reason", "go"], ha);
    expect(approved.code, approved.stderr).toBe(0);
    const get = async (): Promise<WorkflowRecord> => (await b.client.admin("workflow.get", { id })) as WorkflowRecord;
    await eventually(async () => (await get()).status !== "running", 30_000, "the workflow ended");
    const done = await get();
    expect(done.status, done.error).toBe("completed");
    expect(done.steps.ship!.approval!.decision).toMatchObject({ approved: true, by: a.deviceId, reason: "go" });
    expect(readFileSync(effects, "utf8")).toBe("ship v3");
  }, 120_000);
});
