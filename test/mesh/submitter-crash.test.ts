import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import { assertBuilt } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** B's one agent: appends its input to a file (a side effect a second run would repeat), then takes a while. */
const appender = (file: string): string => `security:
  sandbox: off
agents:
  - id: append
    name: append
    description: appends its input to a file
    capabilities: [demo]
    command: [sh, -c, 'read line; echo "$line" >> ${file}; sleep 0.3']
    input: stdin
`;

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

describe("submitter killed with tasks queued and in flight (separate processes)", () => {
  it("restarted, it finishes every task it had taken: none lost, none run twice", async () => {
    const homes = [tempDir("cc-subcrash-a-"), tempDir("cc-subcrash-b-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb] = homes.map((h) => h.path) as [string, string];
    const effects = join(hb, "effects.txt");
    mkdirSync(join(hb, ".coderClaw"));
    writeFileSync(join(hb, ".coderClaw", "runtime.yaml"), appender(effects));
    let a: NodeProcess = await startNodeProcess(ha, ["--lease-timeout", "1500"]);
    const b: NodeProcess = await startNodeProcess(hb, ["--lease-timeout", "1500", "--max-concurrent", "2"]);
    cleanups.push(() => a.stop(), () => b.stop());
    await a.client.admin("mesh.create", { name: "submitter crash" });
    const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
    await b.client.admin("mesh.join", { invite });

    // B has two slots: two tasks run there, the rest wait on A.
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) ids.push((await a.client.submitTask({ description: `t${i}`, input: `task ${i}`, agentId: "append" })).id);
    expect((await a.client.listTasks({ status: "pending" })).length).toBeGreaterThan(0);
    await eventually(() => lines(effects).length >= 3, 20_000, "some tasks ran");
    await a.kill();

    a = await startNodeProcess(ha, ["--lease-timeout", "1500", "--bootstrap", b.addr]);
    await eventually(async () => (await Promise.all(ids.map((id) => a.client.getTaskState(id)))).every((t) => t?.status === "completed"), 60_000, "every task completed after the restart");
    const ran = lines(effects);
    expect(ran.sort()).toEqual(ids.map((_, i) => `task ${i}`).sort());
  }, 120_000);
});
