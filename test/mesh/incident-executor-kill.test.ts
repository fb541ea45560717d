import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import type { TaskState } from "../../src/contract/types.js";
import { assertBuilt } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * C's agents: `append` (a command, so never retried by the mesh) writes its
 * input to a file when it finishes, a side effect a second run would repeat;
 * `sleep` is built in and retryable.
 */
const agents = (file: string): string => `security:
  sandbox: off
agents:
  - id: append
    name: append
    description: appends its input to a file after a while
    capabilities: [demo]
    command: [sh, -c, 'read line; sleep 0.4; echo "$line" >> ${file}']
    input: stdin
`;

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/**
 * The incident of issue 16 at its size: an executor SIGKILLed with 100 routed
 * tasks, half followed by a client and half not. Before the fix, the unfollowed
 * ones showed `running` long past the lease, and after the executor's return 25
 * read `completed` through the adapter but `failed` in the replica and in
 * `task list`, then `failed` everywhere once the submitter restarted.
 */
describe("executor SIGKILLed with 100 routed tasks (separate processes)", () => {
  it("every task ends once, with one outcome that the adapter, the list and the submitter's restart all agree on; no side effect twice", async () => {
    const homes = [tempDir("cc-inc-a-"), tempDir("cc-inc-c-")];
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hc] = homes.map((h) => h.path) as [string, string];
    const effects = join(hc, "effects.txt");
    mkdirSync(join(hc, ".coderClaw"));
    writeFileSync(join(hc, ".coderClaw", "runtime.yaml"), agents(effects));
    const lease = ["--lease-timeout", "1500"];
    let a: NodeProcess = await startNodeProcess(ha, lease);
    let c: NodeProcess = await startNodeProcess(hc, [...lease, "--max-concurrent", "16"]);
    cleanups.push(() => a.stop(), () => c.stop());
    await a.client.admin("mesh.create", { name: "incident" });
    const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
    await c.client.admin("mesh.join", { invite });

    // A runs neither agent: all 100 go to C, 16 at a time; the rest wait on A for a slot there.
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const request = i % 2 === 0 ? { description: `append ${i}`, input: `task ${i}`, agentId: "append" } : { description: `sleep ${i}`, input: "1500 5", agentId: "sleep" };
      ids.push((await a.client.submitTask(request)).id);
    }
    // Half are followed by a client to their end; nobody follows the other half.
    const followed = ids.filter((_, i) => i % 4 < 2);
    const streams = followed.map(async (id) => {
      let last: string | undefined;
      for await (const u of a.client.streamTaskUpdates(id)) last = u.status;
      return last;
    });
    // Read at the end; a failure before then must not leave them unhandled.
    for (const s of streams) s.catch(() => undefined);
    await eventually(() => lines(effects).length >= 4, 30_000, "some tasks ran on C");
    await c.kill();

    // Well past the lease, none is declared failed: only C can tell how its non-retryable work ended, and retryable work waits to go again.
    await new Promise((r) => setTimeout(r, 4000));
    const during = await Promise.all(ids.map((id) => a.client.getTaskState(id)));
    expect(during.filter((t) => t === null || TERMINAL.has(t.status) && t.status !== "completed").map((t) => `${t?.id} ${t?.status} ${t?.error}`)).toEqual([]);

    c = await startNodeProcess(hc, [...lease, "--max-concurrent", "16", "--bootstrap", a.addr]);
    await eventually(async () => (await Promise.all(ids.map((id) => a.client.getTaskState(id)))).every((t) => t !== null && TERMINAL.has(t.status)), 90_000, "every task ended").catch(async (err: Error) => {
      // Say which did not, and why, as the submitter and the executor see them.
      const stuck = (await Promise.all(ids.map((id) => a.client.getTaskState(id)))).filter((t) => t === null || !TERMINAL.has(t.status));
      const told = await Promise.all(stuck.map(async (t) => `${t?.id} ${t?.status} ${JSON.stringify(t?.placement)} attempt there: ${JSON.stringify(t?.placement?.attemptId ? await c.client.getTaskState(t.placement.attemptId).catch((e: Error) => e.message) : null)}`));
      throw new Error(`${err.message}; ${stuck.length} not ended:\n${told.slice(0, 10).join("\n")}`);
    });
    const viaAdapter = new Map((await Promise.all(ids.map((id) => a.client.getTaskState(id)))).map((t) => [t!.id, t!]));
    // Retryable work always completes (again, on C or on A, which has the built-in `sleep` too, if it was interrupted); non-retryable work completes or was interrupted by C's crash, never both.
    for (const [i, id] of ids.entries()) {
      const t = viaAdapter.get(id)!;
      if (i % 2 === 1) expect(t.status, `${id} (sleep)`).toBe("completed");
      else expect(["completed", "failed"], `${id} (append)`).toContain(t.status);
      if (t.status === "failed") expect(t.error, id).toBe("interrupted by restart");
    }
    // Each append ran at most once, and each that completed left its line.
    const ran = lines(effects);
    const twice = ran.filter((l, k) => ran.indexOf(l) !== k);
    const histories = await Promise.all(twice.map(async (l) => {
      const id = ids[Number(l.split(" ")[1])]!;
      return `${l}: ${JSON.stringify(viaAdapter.get(id)?.placement)}\n  ${(await a.client.getTaskEvents(id)).map((e) => `${e.seq} ${e.type} ${e.status ?? ""} ${e.message ?? ""}`).join("\n  ")}`;
    }));
    expect(twice, `no side effect twice:\n${histories.join("\n")}`).toEqual([]);
    for (const [i, id] of ids.entries()) if (i % 2 === 0 && viaAdapter.get(id)!.status === "completed") expect(ran, id).toContain(`task ${i}`);
    // The streams told the same outcomes.
    expect(await Promise.all(streams)).toEqual(followed.map((id) => viaAdapter.get(id)!.status));

    const agree = async (node: NodeProcess, where: string): Promise<void> => {
      const listed = new Map((await node.client.listTasks({ limit: 1000 })).map((t: TaskState) => [t.id, t.status]));
      const read = await Promise.all(ids.map((id) => node.client.getTaskState(id)));
      expect(ids.filter((id) => listed.get(id) !== viaAdapter.get(id)!.status).map((id) => `${id}: listed ${listed.get(id)}, adapter ${viaAdapter.get(id)!.status}`), `${where}: list`).toEqual([]);
      expect(read.filter((t, k) => t?.status !== viaAdapter.get(ids[k]!)!.status).map((t) => `${t?.id} ${t?.status}`), `${where}: read`).toEqual([]);
    };
    await agree(a, "A");
    // C asks A, which keeps them.
    await eventually(async () => (await Promise.all(ids.map((id) => c.client.getTaskState(id)))).every((t, k) => t?.status === viaAdapter.get(ids[k]!)!.status), 30_000, "C agrees");
    await a.stop();
    a = await startNodeProcess(ha, [...lease, "--bootstrap", c.addr]);
    await agree(a, "A after its restart");
  }, 240_000);
});
