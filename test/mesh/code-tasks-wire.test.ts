import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode, NodeOptions } from "../../node/index.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { workspaceResultOf, type WorkspaceResult } from "../../src/workspace/task-spec.js";
import { createHttpServer } from "../../node/http/index.js";
import { openTaskChanges, taskChanges } from "../../node/workspaces/task-result.js";
import { PIECE_TARGET_BYTES } from "../../src/workspace/manifest-pieces.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { reportAgent } from "../helpers/report-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

let stop: (() => Promise<void>) | undefined;
const dirs: Array<{ remove(): void }> = [];
afterEach(async () => {
  await stop?.();
  stop = undefined;
  for (const d of dirs.splice(0)) d.remove();
});

/** Writes a report into its workspace, changing nothing else. */
const reporter = reportAgent((workspace) => `files: ${readdirSync(join(workspace, "files")).length}\n`);

async function completed(node: CoderClawNode, id: string): Promise<{ status: string; error?: string; result?: WorkspaceResult }> {
  for await (const _ of node.adapter.streamTaskUpdates(id));
  const state = (await node.adapter.getTaskState(id))!;
  const done = (await node.adapter.getTaskEvents(id)).findLast((e) => e.status === "completed");
  return { status: state.status, ...(state.error !== undefined && { error: state.error }), ...(done !== undefined && { result: workspaceResultOf(done.data) }) };
}

/** A mesh of a submitter and an executor running `agent` with `options`, and a directory for the submitter's code. */
async function submitterAndExecutor(agent: AgentExecutor, options: NodeOptions): Promise<{ a: CoderClawNode; b: CoderClawNode; src: { path: string } }> {
  const mesh = await startNodes(2, (i) => (i === 1 ? { agents: [agent], options } : {}));
  stop = mesh.stop;
  const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
  await formMesh(mesh.nodes);
  await eventually(async () => (await a.directory.members()).length === 1, 10_000, "members");
  const src = tempDir("cc-code-");
  dirs.push(src);
  return { a, b, src };
}

describe("code sent with tasks, on the wire", () => {
  it("a second send moves the manifest and what changed; artifacts come back; a member the tree was not sent to reads none of it; a spec that lies is refused", async () => {
    const mesh = await startNodes(3, (i) => ({ agents: i === 1 ? [reporter] : [], options: { sandbox: "off" } }));
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    await eventually(async () => (await a.directory.members()).length === 2, 10_000, "members");

    // A plain directory (no git): 1,000 files of 1 KiB, so that the whole manifest (about 120 bytes a file) is many pieces.
    const src = tempDir("cc-code-src-");
    dirs.push(src);
    mkdirSync(join(src.path, "files"));
    for (let i = 0; i < 1000; i++) writeFileSync(join(src.path, "files", `f${i}.txt`), `${i}`.padEnd(1024, "x"));
    const treeBytes = 1000 * 1024;
    const received = (): number => b.blobs.client.counters(a.peerId).received;

    const first = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, artifacts: ["out/*.txt"] });
    const one = await completed(a, first.id);
    expect(one.status, one.error).toBe("completed");
    const firstBytes = received();
    expect(firstBytes).toBeGreaterThan(treeBytes);
    // The artifacts' names are the executor's word: a result bringing back a file none of the task's patterns names is refused
    // (as if the executor had brought back out/report.txt for a task that asked for coverage/** alone), from its manifest:
    // none of its files' bytes is fetched, and the refusal is audited naming the executor.
    const asking = (patterns: string[]) => ({
      getTaskEvents: (id: string) => a.adapter.getTaskEvents(id),
      getTaskState: async (id: string) => {
        const state = (await a.adapter.getTaskState(id))!;
        return { ...state, metadata: { ...state.metadata, workspace: { ...(state.metadata!.workspace as object), artifacts: patterns } } };
      },
    });
    const unasked = /brings back "out\/report\.txt", and none of the artifact patterns it was submitted with names it \(coverage\/\*\*\): refused/;
    await expect(openTaskChanges(asking(["coverage/**"]), a.workspaces, first.id)).rejects.toThrow(unasked);
    const resultBlobs = (await b.workspaces.resultFiles(one.result!, { taskId: first.id, artifacts: ["out/*.txt"] })).flatMap((f) => f.chunks);
    expect(await a.blobStore.missing(resultBlobs)).toEqual(resultBlobs);
    const audited = await a.security.current.getAuditLog({ action: "task.result", result: "denied" });
    expect(audited.map((e) => [e.body.userId, e.body.resource, e.body.reason])).toEqual([[b.peerId, first.id, expect.stringMatching(unasked)]]);
    await expect(taskChanges(asking(["coverage/**"]), a.workspaces, first.id)).rejects.toThrow(unasked);
    const changes = await taskChanges(a.adapter, a.workspaces, first.id);
    // The report is the only change, and an artifact too.
    expect(one.result!.changed).toEqual({ added: 1, modified: 0, deleted: 0 });
    expect(changes.patch.toString()).toContain("+++ b/out/report.txt");
    expect(changes.artifacts.map((x) => [x.path, x.bytes.toString()])).toEqual([["out/report.txt", "files: 1000\n"]]);
    // The same over HTTP.
    const http = await createHttpServer({ adapter: a.adapter, authenticate: () => ({}), changes: (id) => openTaskChanges(a.adapter, a.workspaces, id), port: 0 });
    try {
      const get = (path: string): Promise<Response> => fetch(`${http.url}/v1/tasks/${first.id}${path}`, { headers: { authorization: "Bearer t" } });
      expect(await (await get("/patch")).text()).toBe(changes.patch.toString());
      // Submitted without commits: none to answer, which an empty series would not say.
      const noCommits = await get("/commits");
      expect(noCommits.status).toBe(404);
      expect(await noCommits.text()).toMatch(/was not submitted with commits/);
      expect(await (await get("/artifacts")).json()).toEqual({ artifacts: [{ path: "out/report.txt", size: 12 }] });
      expect(await (await get("/artifacts/out/report.txt")).text()).toBe("files: 1000\n");
      expect((await get("/artifacts/nope.txt")).status).toBe(404);
    } finally {
      await http.close();
    }
    // Held here now, the result is refused all the same.
    await expect(openTaskChanges(asking(["coverage/**"]), a.workspaces, first.id)).rejects.toThrow(unasked);
    expect((await openTaskChanges(asking(["./out/**"]), a.workspaces, first.id)).files.map((f) => [f.kind, f.path])).toEqual([["artifact", "out/report.txt"], ["patch", "changes.patch"]]);

    // One file changes: the second send moves the manifest's index, the one piece of it that changed and that file; not the tree, nor the whole manifest.
    writeFileSync(join(src.path, "files", "f7.txt"), "changed".padEnd(1024, "y"));
    const second = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path });
    expect((await completed(a, second.id)).status).toBe("completed");
    const secondBytes = received() - firstBytes;
    const indexBytes = ((await a.workspaces.snapshot(src.path)).files / 32) * 67;
    expect(secondBytes, `${secondBytes} bytes for a changed file of 1 KiB in a tree of ${treeBytes}`).toBeLessThan(1024 + indexBytes + PIECE_TARGET_BYTES + 8 * 1024);

    // C is a member and may learn the tree id (task documents replicate), but the tree was never sent to it.
    const spec = (await a.adapter.getTaskState(second.id))!.metadata!.workspace as { tree: string; bytes: number; files: number };
    await expect(c.blobs.client.fetchTree(a.peerId, spec.tree)).rejects.toMatchObject({ code: "PERMISSION_DENIED" });

    // The code a task carries is the node's to name, from `repo`: a caller (over HTTP, the control socket or embedding code)
    // naming a tree A holds, its own submission's here, would have A grant it to the executor, which makes a workspace of it.
    for (const key of ["workspace", "workspaceGrant"]) {
      await expect(a.adapter.submitTask({ description: "names a tree", input: "", agentId: "report", metadata: { [key]: spec } })).rejects.toMatchObject({ code: "INVALID_INPUT", field: `metadata.${key}` });
    }
    // Sent straight to B by a member, a request whose signed size does not match its tree fails before any agent runs,
    // naming the field; nothing is left behind.
    const lying = await a.client.submit(b.peerId, { description: "lies", input: "", agentId: "report", metadata: { workspace: { ...spec, bytes: spec.bytes + 1 } } });
    await eventually(async () => (await a.client.get(b.peerId, lying.id))?.status === "failed", 10_000, "the lying task failed");
    expect((await a.client.get(b.peerId, lying.id))?.error).toMatch(/metadata\.workspace/);
    const bogus = { description: "bad", input: "", agentId: "report", metadata: { workspace: { tree: "../../etc", bytes: 1, files: 1 } } };
    await expect(a.client.submit(b.peerId, bogus, undefined, { follow: true })).rejects.toMatchObject({ code: "INVALID_INPUT", field: "metadata.workspace.tree" });
    expect(readdirSync(join(mesh.homes[1]!, "workspaces", "tasks"))).toEqual([]);
  }, 60_000);

  it("a node takes code only for the agents its policy names, and trees only up to its limit: others are refused before anything is fetched", async () => {
    const { a, b, src } = await submitterAndExecutor(reporter, { sandbox: "off", code: { agents: ["report"], maxTreeBytes: 1024 } });
    writeFileSync(join(src.path, "small.txt"), "small\n");
    await expect(a.adapter.submitTask({ description: "echo", input: "", agentId: "echo" }, { repo: src.path, route: b.peerId })).rejects.toThrow(/agent echo may not receive code from other devices/);
    writeFileSync(join(src.path, "big.txt"), "x".repeat(4096));
    await expect(a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path })).rejects.toThrow(/over this node's limit of 1024/);
    expect(b.blobs.client.counters(a.peerId).received).toBe(0);
  }, 60_000);

  it("commits made by an agent in its workspace come back to embedding code and over HTTP, as one series", async () => {
    // Agent `commit`: commits a file in its workspace, as a coding agent commits its work.
    const committer = {
      ...reportAgent(() => ""),
      info: { id: "commit", name: "commit", description: "", capabilities: [] },
      execute: async (ctx: { workspace: string }) => {
        writeFileSync(join(ctx.workspace, "made.txt"), "made by the agent\n");
        execFileSync("git", ["add", "made.txt"], { cwd: ctx.workspace });
        execFileSync("git", ["commit", "-qm", "the agent's work"], { cwd: ctx.workspace });
        return { output: "committed" };
      },
    };
    const { a, b, src } = await submitterAndExecutor(committer, { sandbox: "off" });
    writeFileSync(join(src.path, "a.txt"), "a\n");

    await expect(a.adapter.submitTask({ description: "c", input: "", agentId: "commit" }, { commits: true })).rejects.toMatchObject({ code: "INVALID_INPUT", field: "commits" });
    const task = await a.adapter.submitTask({ description: "commit", input: "", agentId: "commit" }, { repo: src.path, commits: true, route: b.peerId });
    const done = await completed(a, task.id);
    expect(done.status, done.error).toBe("completed");
    expect(done.result?.commits).toBe(1);
    const changes = await taskChanges(a.adapter, a.workspaces, task.id);
    expect(changes.commits.toString()).toMatch(/^From [0-9a-f]{40} /);
    expect(changes.commits.toString()).toContain("Subject: [PATCH] the agent's work");
    expect(changes.commits.toString()).toContain("+made by the agent");
    expect(changes.patch.toString()).toContain("+++ b/made.txt");
    const http = await createHttpServer({ adapter: a.adapter, authenticate: () => ({}), changes: (id) => openTaskChanges(a.adapter, a.workspaces, id), port: 0 });
    try {
      const got = await fetch(`${http.url}/v1/tasks/${task.id}/commits`, { headers: { authorization: "Bearer t" } });
      expect(got.headers.get("content-type")).toBe("application/mbox");
      expect(Buffer.from(await got.arrayBuffer())).toEqual(changes.commits);
    } finally {
      await http.close();
    }
  }, 60_000);

  it("with --commits a member's task is refused when it is submitted, not failed once its agent is done, by an executor without the sandbox its commits are read in", async () => {
    // An agent that runs no process needs no sandbox; reading the commits of its workspace's repository does.
    const { a, b, src } = await submitterAndExecutor(reporter, { bwrapPath: "/nonexistent/bwrap" });
    mkdirSync(join(src.path, "files"));
    writeFileSync(join(src.path, "files", "a.txt"), "a\n");

    await expect(a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, commits: true, route: b.peerId })).rejects.toThrow(/bubblewrap sandbox.*\/nonexistent\/bwrap is not installed/);
    expect(await b.core.engine.listTasks()).toEqual([]);
    // Without --commits the same work runs.
    const task = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, route: b.peerId });
    expect((await completed(a, task.id)).status).toBe("completed");
  }, 60_000);
});
