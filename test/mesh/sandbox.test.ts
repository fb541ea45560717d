import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/create-node.js";
import { deviceKeyPath } from "../../identity/index.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * Shell work from another device runs in a bubblewrap sandbox (installed by
 * .ci/run): it sees its workspace read-write and the system read-only, not the
 * node's data directory (keys, database) nor home directories. Real nodes on
 * 127.0.0.1, real bwrap, real processes.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pair(v: Partial<NodeOptions> = {}): Promise<{ f: CoderClawNode; v: CoderClawNode; vHome: string }> {
  const dirs = [tempDir("cc-sbx-f-"), tempDir("cc-sbx-v-")];
  cleanups.push(() => dirs.forEach((d) => d.remove()));
  const base = (home: string): NodeOptions => ({ dataDir: home, mdns: false, agents: createBuiltinRegistry([createShellAgent()]), inboundConnectionThreshold: 100 });
  const f = await createNode(base(dirs[0]!.path));
  const vNode = await createNode({ ...base(dirs[1]!.path), ...v });
  cleanups.push(async () => void (await Promise.allSettled([f.stop(), vNode.stop()])));
  await f.createMesh("sandbox");
  const { invite } = await f.pairing.invite("trusted", 60_000);
  await vNode.pairing.join(invite);
  await f.dial(vNode.multiaddrs()[0]!);
  await eventually(() => f.membership.isMember(vNode.peerId) && vNode.membership.isMember(f.peerId), 10_000, "members");
  return { f, v: vNode, vHome: dirs[1]!.path };
}

/** F (admin) has V run `script`; resolves with V's final state of it. */
async function runOnV(f: CoderClawNode, v: CoderClawNode, script: string) {
  const task = await f.adapter.submitTask({ description: "probe", input: script, agentId: "shell" }, { route: v.peerId });
  for await (const _ of f.adapter.streamTaskUpdates(task.id));
  const state = (await f.adapter.getTaskState(task.id))!;
  // V ran it as an attempt of F's task, and recorded the same outcome.
  expect((await v.core.engine.getTask(state.placement!.attemptId!))?.status).toBe(state.status);
  return state;
}

describe("sandbox of work from other devices", () => {
  it("sees the workspace read-write and the system read-only, and neither the node's keys and database nor home directories", async () => {
    const { f, v, vHome } = await pair();
    const probe = join(homedir(), `.coderclaw-sandbox-probe-${process.pid}`);
    writeFileSync(probe, "dotfile secret\n");
    cleanups.push(() => rmSync(probe, { force: true }));
    const key = deviceKeyPath(vHome);
    const state = await runOnV(
      f,
      v,
      [
        `cat ${key} >/dev/null 2>&1 && echo KEY-READ || echo key-hidden`,
        `ls ${join(vHome, "db")} >/dev/null 2>&1 && echo DB-SEEN || echo db-hidden`,
        `cat ${probe} >/dev/null 2>&1 && echo DOTFILE-READ || echo dotfile-hidden`,
        `touch /usr/coderclaw-sandbox-probe 2>/dev/null && echo SYSTEM-WRITTEN || echo system-read-only`,
        "echo made > in-workspace.txt && cat in-workspace.txt",
        "test -x /bin/sh && echo tools-present",
      ].join("; "),
    );
    expect(state.status).toBe("completed");
    expect(state.output?.split("\n").filter(Boolean)).toEqual(["key-hidden", "db-hidden", "dotfile-hidden", "system-read-only", "made", "tools-present"]);
    expect(existsSync("/usr/coderclaw-sandbox-probe")).toBe(false);
    expect(readFileSync(join(vHome, "workspaces", "default", "in-workspace.txt"), "utf8")).toBe("made\n");

    // The node's own work is not sandboxed.
    const local = await v.adapter.submitTask({ description: "local", input: `cat ${probe}`, agentId: "shell" }, { route: v.peerId });
    await eventually(async () => (await v.core.engine.getTask(local.id))?.status === "completed", 15_000, "local task");
    expect((await v.core.engine.getTask(local.id))?.output).toBe("dotfile secret\n");
  }, 60_000);

  it("a cancel reaches the processes inside the sandbox", async () => {
    const { f, v } = await pair();
    // A duration no other process here sleeps, to find it in ps.
    const marker = `sleep 6${process.pid}.25`;
    const task = await f.adapter.submitTask({ description: "long", input: marker, agentId: "shell" }, { route: v.peerId });
    const running = (): boolean => execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).includes(marker);
    await eventually(running, 10_000, "the sandboxed sleep runs");
    expect(await f.adapter.cancelTask(task.id)).toBe(true);
    await eventually(() => !running(), 10_000, "the sandboxed sleep is gone");
  }, 60_000);

  it("refuses remote shell work clearly where bubblewrap is missing, when it is submitted, and runs it unsandboxed only when told to", async () => {
    const missing = await pair({ bwrapPath: "/nonexistent/bwrap" });
    await expect(missing.f.adapter.submitTask({ description: "probe", input: "echo ran", agentId: "shell" }, { route: missing.v.peerId })).rejects.toThrow(
      /bubblewrap sandbox.*\/nonexistent\/bwrap is not installed.*apt-get install bubblewrap.*security\.sandbox: off/,
    );
    expect(await missing.v.core.engine.listTasks()).toEqual([]);
    // Work that runs no process needs no sandbox.
    const echo = await missing.f.adapter.submitTask({ description: "echo", input: "hi", agentId: "echo" }, { route: missing.v.peerId });
    await eventually(async () => (await missing.f.adapter.getTaskState(echo.id))?.status === "completed", 15_000, "echo task");
    // The node's own shell work needs none either.
    const local = await missing.v.adapter.submitTask({ description: "local", input: "echo local", agentId: "shell" }, { route: missing.v.peerId });
    await eventually(async () => (await missing.v.core.engine.getTask(local.id))?.status === "completed", 15_000, "local shell task");

    const off = await pair({ sandbox: "off", bwrapPath: "/nonexistent/bwrap" });
    const ran = await runOnV(off.f, off.v, `test -r ${deviceKeyPath(off.vHome)} && echo key-visible`);
    expect(ran.status).toBe("completed");
    expect(ran.output).toBe("key-visible\n");
  }, 60_000);
});
