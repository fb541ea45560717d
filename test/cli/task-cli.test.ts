import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

function home(): string {
  const d = tempDir("cc-cli-");
  cleanups.push(() => d.remove());
  return d.path;
}

describe("coderclaw task (no node running: storage and in-process)", () => {
  it("submit --wait runs in-process, streams plain lines when piped, prints the output and exits 0", async () => {
    const h = home();
    const r = await runCli(["task", "submit", "hello cli", "--agent", "echo", "--wait"], h);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hello cli\n");
    expect(r.stderr).toMatch(/^task [0-9a-f-]{36}\npending task accepted\nplanning .*\nrunning .*\ncompleted 100% completed\n$/);
  });

  it("submit --wait --json prints the final state; a failed task exits 1", async () => {
    const h = home();
    const ok = await runCli(["task", "submit", "hi", "--wait", "--json"], h);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ status: "completed", output: "hi", agentId: "echo" });
    const bad = await runCli(["task", "submit", "not-a-number", "--agent", "sleep", "--wait", "--json"], h);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ status: "failed" });
    expect(JSON.parse(bad.stdout).error).toContain("whole number of milliseconds");
  });

  it("exits 2 for usage and input errors, naming what was wrong", async () => {
    const h = home();
    const noArg = await runCli(["task", "submit"], h);
    expect(noArg.code).toBe(2);
    expect(noArg.stderr).toContain("missing required argument 'input'");
    const agent = await runCli(["task", "submit", "x", "--agent", "nope"], h);
    expect(agent.code).toBe(2);
    expect(agent.stderr).toContain("agent nope");
    const badId = await runCli(["task", "show", "zzz"], h);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('task "zzz": a prefix needs at least 4 characters');
    const badStatus = await runCli(["task", "list", "--status", "done"], h);
    expect(badStatus.code).toBe(2);
    const huge = await runCli(["task", "submit", "x".repeat(1024 * 1024 + 1)], h).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
    // Argument lists this long may be refused by the OS before we see them; when we see them, they are refused as input.
    if (huge.code !== -1) {
      expect(huge.code).toBe(2);
      expect(huge.stderr).toContain("input");
    }
    const list = await runCli(["task", "list", "--json"], h);
    expect(JSON.parse(list.stdout)).toEqual([]);
  });

  it("submit without --wait and without a node queues the task for the next start; reads come from storage", async () => {
    const h = home();
    const r = await runCli(["task", "submit", "later", "--agent", "echo"], h);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    expect(r.stderr).toContain("no node is running");
    const show = await runCli(["task", "show", id, "--json"], h);
    expect(JSON.parse(show.stdout)).toMatchObject({ id, status: "pending" });
    const node = await startCli(["start"], h, /control socket/);
    cleanups.push(() => node.stop());
    let status = "pending";
    for (let i = 0; i < 20 && status !== "completed"; i++) {
      status = (JSON.parse((await runCli(["task", "show", id, "--json"], h)).stdout) as { status: string }).status;
    }
    expect(status).toBe("completed");
  });
});

describe("coderclaw start and the control socket", () => {
  it("serves other CLI processes: submit, follow, show, events, cancel, list, status", { timeout: 90_000 }, async () => {
    const h = home();
    const node = await startCli(["start"], h, /control socket/);
    cleanups.push(() => node.stop());
    const status = await runCli(["status", "--json"], h);
    expect(JSON.parse(status.stdout)).toMatchObject({ healthy: true, reachedThrough: "node" });

    const sub = await runCli(["task", "submit", "60000 600", "--agent", "sleep", "--json"], h);
    const id = (JSON.parse(sub.stdout) as { id: string }).id;
    const cancel = await runCli(["task", "cancel", id], h);
    expect(cancel.code).toBe(0);
    const again = await runCli(["task", "cancel", id], h);
    expect(again.code).toBe(1);
    const events = JSON.parse((await runCli(["task", "events", id, "--json"], h)).stdout) as Array<{ status: string }>;
    expect(events.at(-1)?.status).toBe("cancelled");

    const waited = await runCli(["task", "submit", "via node", "--wait"], h);
    expect(waited.code).toBe(0);
    expect(waited.stdout).toBe("via node\n");
    const list = JSON.parse((await runCli(["task", "list", "--json"], h)).stdout) as Array<{ status: string }>;
    expect(list.map((t) => t.status)).toEqual(["completed", "cancelled"]);
    expect(await node.stop()).toBe(0);
  });

  it("refuses a client with a wrong control token", async () => {
    const h = home();
    const node = await startCli(["start"], h, /control socket/);
    cleanups.push(() => node.stop());
    const { ControlClientAdapter } = await import("../../node/control/control-client.js");
    const err = await ControlClientAdapter.connect(`${h}/control.sock`, "wrong").catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("UNAUTHENTICATED");
  });
});

describe("the owner's operations through the control socket are audited", () => {
  it("records submits and cancels in the node's audit log, which verifies", { timeout: 90_000 }, async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    const sub = await runCli(["task", "submit", "audited", "--json"], h);
    const id = (JSON.parse(sub.stdout) as { id: string }).id;
    await runCli(["task", "cancel", id], h);
    const entries = JSON.parse((await runCli(["audit", "query", "--json"], h)).stdout) as Array<{ body: { action: string; resource?: string } }>;
    expect(entries.some((e) => e.body.action === "task.submit" && e.body.resource === id)).toBe(true);
    expect(entries.some((e) => e.body.action === "task.cancel" && e.body.resource === id)).toBe(true);
    const verify = await runCli(["audit", "verify"], h);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ entries in 1 chain/);
  });
});

const STRANGER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

// --route travels through the contract to whichever runtime the CLI reached, which honours or refuses it.
describe("coderclaw task submit --route", () => {
  it("without a node: local runs in-process; a peer is refused by the in-process runtime, exit 2, nothing stored", async () => {
    const h = home();
    const local = await runCli(["task", "submit", "here", "--route", "local", "--wait"], h);
    expect(local.code).toBe(0);
    expect(local.stdout).toBe("here\n");
    const peer = await runCli(["task", "submit", "there", "--route", STRANGER], h);
    expect(peer.code).toBe(2);
    expect(peer.stderr).toContain("route: LocalTransportAdapter runs tasks in this process");
    expect(peer.stderr).toContain("coderclaw start");
    const list = await runCli(["task", "list", "--json"], h);
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(1);
  });

  it("with a node running: local and the node's own id run there; a peer that is not a member is refused, exit 2", { timeout: 60_000 }, async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    const status = JSON.parse((await runCli(["status", "--json"], h)).stdout) as { reachedThrough: string };
    expect(status.reachedThrough).toBe("node");
    const local = await runCli(["task", "submit", "on the node", "--route", "local", "--wait", "--json"], h);
    expect(local.code).toBe(0);
    const done = JSON.parse(local.stdout) as { status: string; executorId: string };
    expect(done.status).toBe("completed");
    const self = await runCli(["task", "submit", "by id", "--route", done.executorId, "--wait", "--json"], h);
    expect(JSON.parse(self.stdout)).toMatchObject({ status: "completed", executorId: done.executorId });
    const stranger = await runCli(["task", "submit", "elsewhere", "--route", STRANGER], h);
    expect(stranger.code).toBe(2);
    expect(stranger.stderr).toContain(`route: ${STRANGER} is not a member of this mesh`);
  });
});

describe("coderclaw queue, task retry and the scheduling flags", () => {
  it("a task no member can run waits with its reason, shown by submit, queue and task list; --no-wait-for-peer refuses; bad flags exit 2; retry runs a cancelled task again", { timeout: 90_000 }, async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    const waits = await runCli(["task", "submit", "train it", "--agent", "trainer", "--priority", "5", "--requires", "gpu,memoryGiB>=16", "--deadline", "2h"], h);
    expect(waits.code).toBe(0);
    const id = waits.stdout.trim();
    expect(waits.stderr).toBe("pending: waiting for a member with agent trainer\n");
    const queue = await runCli(["queue"], h);
    expect(queue.stdout).toContain(id);
    expect(queue.stdout).toContain("waiting for a member with agent trainer");
    const queued = JSON.parse((await runCli(["queue", "--json"], h)).stdout) as Array<{ id: string; placement: { priority: number; requires: unknown; deadline: string } }>;
    expect(queued.map((t) => t.id)).toEqual([id]);
    expect(queued[0]!.placement).toMatchObject({ priority: 5, requires: { labels: ["gpu"], resources: { memoryGiB: 16 } } });
    expect(Date.parse(queued[0]!.placement.deadline) - Date.now()).toBeGreaterThan(60 * 60 * 1000);
    expect((await runCli(["task", "list"], h)).stdout).toContain("waiting for a member with agent trainer");
    expect((await runCli(["task", "show", id], h)).stdout).toMatch(/waits for\s+waiting for a member with agent trainer/);

    const now = await runCli(["task", "submit", "now or never", "--agent", "trainer", "--no-wait-for-peer"], h);
    expect(now.code).toBe(2);
    expect(now.stderr).toContain("agent trainer: no member can start it now");
    for (const [flags, message] of [
      [["--deadline", "someday"], "--deadline"],
      [["--priority", "high"], "--priority"],
      [["--requires", "gpu,cpu>=lots"], "requires: item 2"],
      [["--route", "remote:auto[gpu"], "remote:<auto|peer-id>"],
    ] as const) {
      const bad = await runCli(["task", "submit", "x", ...flags], h);
      expect(bad.code, flags.join(" ")).toBe(2);
      expect(bad.stderr, flags.join(" ")).toContain(message);
    }

    expect((await runCli(["task", "cancel", id], h)).code).toBe(0);
    const retried = await runCli(["task", "retry", id, "--json"], h);
    expect(retried.code).toBe(0);
    const again = JSON.parse(retried.stdout) as { id: string; parentTaskId: string; status: string; placement: { priority: number } };
    expect(again).toMatchObject({ parentTaskId: id, status: "pending", placement: { priority: 5 } });
    const done = await runCli(["task", "submit", "fine", "--wait"], h);
    expect(done.code).toBe(0);
    const notAgain = await runCli(["task", "retry", again.id.replace(/.$/, "0"), "--json"], h);
    expect(notAgain.code).not.toBe(0);
  });
});
