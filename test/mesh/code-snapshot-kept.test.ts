import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { glob } from "tinyglobby";
import { afterEach, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import type { TaskState } from "../../src/contract/types.js";
import { CHUNK_SIZE } from "../../src/workspace/manifest.js";
import { createNode, type CoderClawNode } from "../../node/index.js";
import { formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8" }).trim();
}

/** Stages every change under `root` and commits it. */
function commitAll(root: string, message: string): void {
  git(root, "add", "-A");
  git(root, "commit", "-qm", message);
}

const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** Agent `hashes`: answers the SHA-256 of every file of its workspace, by path. */
const hashes: AgentExecutor = {
  info: { id: "hashes", name: "hashes", description: "", capabilities: [] },
  resumable: false,
  retryable: false,
  availability: () => ({ available: true }),
  execute: async (ctx) => {
    const paths = (await glob("**", { cwd: ctx.workspace, dot: true })).sort();
    return { output: JSON.stringify(Object.fromEntries(paths.map((p) => [p, sha(readFileSync(join(ctx.workspace, p)))]))) };
  },
};

const made: Array<() => unknown> = [];
afterEach(async () => {
  for (const undo of made.splice(0).reverse()) await undo();
});

async function finalState(node: CoderClawNode, id: string): Promise<TaskState> {
  for await (const _ of node.adapter.streamTaskUpdates(id));
  return (await node.adapter.getTaskState(id))!;
}

/**
 * A submitter A and an executor B that runs `hashes`, formed into a mesh with
 * B down (a task for `hashes` waits), and an empty git repository; all undone
 * after the test. `keepBytes` is A's `code.keepBytes`. `bringBack` starts B again from its home, connected to `to`.
 */
async function waitingMesh(prefix: string, keepBytes?: number): Promise<{ a: CoderClawNode; homes: string[]; root: string; bringBack(to: CoderClawNode): Promise<void> }> {
  const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [hashes] : [], options: { sandbox: "off", ...(i === 0 && keepBytes !== undefined && { code: { keepBytes } }) } }));
  made.push(mesh.stop);
  await formMesh(mesh.nodes);
  await mesh.nodes[1]!.stop();
  const src = tempDir(prefix);
  made.push(() => src.remove());
  git(src.path, "init", "-q");
  return {
    a: mesh.nodes[0]!,
    homes: mesh.homes,
    root: src.path,
    bringBack: async (to) => {
      const back = await createNode(restarted(mesh.homes[1]!, [hashes]));
      made.push(() => back.stop());
      await back.dial(to.multiaddrs()[0]!);
    },
  };
}

/** Options of a node started again from `dataDir`, as startNodes made it. */
const restarted = (dataDir: string, agents: AgentExecutor[]): Parameters<typeof createNode>[0] => ({ dataDir, mdns: false, agents: createBuiltinRegistry(agents), sandbox: "off", leaseIntervalMs: 200, leaseTimeoutMs: 1500 });

/** Follows the task to its end on `node`: it completed, and its agent saw exactly `files` in its workspace. */
async function expectRanOn(node: CoderClawNode, taskId: string, files: Record<string, Buffer>): Promise<void> {
  const done = await finalState(node, taskId);
  expect(done.status, done.error).toBe("completed");
  expect(JSON.parse(done.output!)).toEqual(Object.fromEntries(Object.entries(files).map(([p, bytes]) => [p, sha(bytes)])));
}

describe("a task that carries code runs on the tree as it was submitted", () => {
  it("while the task waits for its executor, the submitter edits, stages, commits and adds files: the executor still gets every file as snapshotted, from git's objects or from what was kept at submit", async () => {
    const { a, root, bringBack } = await waitingMesh("cc-kept-mesh-");
    mkdirSync(join(root, "sub"));
    const snapshotted: Record<string, Buffer> = {
      "clean.bin": randomBytes(2 * CHUNK_SIZE + 5),
      "dirty.txt": Buffer.from("edited, not staged\n"),
      "staged.txt": Buffer.from("staged, not committed\n"),
      "sub/untracked.bin": randomBytes(70_000),
    };
    writeFileSync(join(root, "clean.bin"), snapshotted["clean.bin"]!);
    writeFileSync(join(root, "dirty.txt"), "committed\n");
    writeFileSync(join(root, "staged.txt"), "committed\n");
    commitAll(root, "base");
    writeFileSync(join(root, "staged.txt"), snapshotted["staged.txt"]!);
    git(root, "add", "staged.txt");
    for (const path of ["dirty.txt", "sub/untracked.bin"]) writeFileSync(join(root, path), snapshotted[path]!);

    const task = await a.adapter.submitTask({ description: "hash the tree", input: "", agentId: "hashes" }, { repo: root });
    expect(task.status).toBe("pending");

    // The submitter goes on working: every file changes, the change is committed, then more changes and a new file.
    for (const path of Object.keys(snapshotted)) writeFileSync(join(root, path), `the submitter's next edit of ${path}\n`);
    commitAll(root, "next");
    writeFileSync(join(root, "clean.bin"), "and another\n");
    writeFileSync(join(root, "new.txt"), "not in the snapshot\n");

    await bringBack(a);
    await expectRanOn(a, task.id, snapshotted);
  }, 60_000);

  it("after the submitter restarts, what its repository committed since and what it kept at submit still give the tree as snapshotted", async () => {
    const { a, homes, root, bringBack } = await waitingMesh("cc-kept-restart-");
    const snapshotted: Record<string, Buffer> = { "clean.bin": randomBytes(CHUNK_SIZE + 3), "dirty.txt": Buffer.from("edited\n"), "untracked.txt": Buffer.from("new\n") };
    writeFileSync(join(root, "clean.bin"), snapshotted["clean.bin"]!);
    writeFileSync(join(root, "dirty.txt"), "committed\n");
    commitAll(root, "base");
    for (const path of ["dirty.txt", "untracked.txt"]) writeFileSync(join(root, path), snapshotted[path]!);

    const task = await a.adapter.submitTask({ description: "hash the tree", input: "", agentId: "hashes" }, { repo: root });
    for (const path of Object.keys(snapshotted)) writeFileSync(join(root, path), `changed ${path}\n`);
    commitAll(root, "next");

    await a.stop();
    const again = await createNode(restarted(homes[0]!, []));
    made.push(() => again.stop());
    await bringBack(again);
    await expectRanOn(again, task.id, snapshotted);
  }, 60_000);

  it("with code.keepBytes 0 the submitter keeps nothing: an untracked file edited before the fetch fails the task, the one blob missing being its (the changed tracked file came from git)", async () => {
    const { a, root, bringBack } = await waitingMesh("cc-kept-none-", 0);
    writeFileSync(join(root, "tracked.txt"), "committed\n");
    commitAll(root, "base");
    writeFileSync(join(root, "untracked.txt"), "only here\n");

    const task = await a.adapter.submitTask({ description: "hash the tree", input: "", agentId: "hashes" }, { repo: root });
    writeFileSync(join(root, "tracked.txt"), "changed\n");
    writeFileSync(join(root, "untracked.txt"), "changed\n");
    await bringBack(a);
    const done = await finalState(a, task.id);
    expect(done.status).toBe("failed");
    expect(done.error).toMatch(/no longer holds 1 blob\(s\)/);
  }, 60_000);
});
