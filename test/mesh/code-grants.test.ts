import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { decodeCanonical, encodeCanonical } from "../../identity/canonical.js";
import type { CoderClawNode } from "../../node/index.js";
import { startBlobService, type BlobService } from "../../protocols/blobs/index.js";
import { workspaceResultOf, type WorkspaceResult, type WorkspaceSpec } from "../../src/workspace/task-spec.js";
import { grantTaskResult, openTaskChanges, taskChanges } from "../../node/workspaces/task-result.js";
import { toBase64Url } from "../../identity/bytes.js";
import { createNode } from "../../node/create-node.js";
import { createHttpServer } from "../../node/http/index.js";
import { runAdmin } from "../../node/node-admin.js";
import { executorGrantOf, withExecutorGrant } from "../../node/workspaces/executor-grant.js";
import { readTreeGrant } from "../../node/workspaces/tree-grants.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { reportAgent } from "../helpers/report-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Nodes to stop and directories to remove, last made first. */
const made: Array<() => unknown> = [];
afterEach(async () => {
  for (const undo of made.splice(0).reverse()) await undo();
});

/** Writes a report into its workspace, changing nothing else. */
const reporter = reportAgent(() => "reported\n");

async function completedResult(node: CoderClawNode, id: string): Promise<WorkspaceResult> {
  for await (const _ of node.adapter.streamTaskUpdates(id));
  const state = (await node.adapter.getTaskState(id))!;
  expect(state.status, state.error).toBe("completed");
  return workspaceResultOf((await node.adapter.getTaskEvents(id)).findLast((e) => e.status === "completed")!.data)!;
}

async function refusals(holder: CoderClawNode, action: string, peer: string): Promise<string[]> {
  return (await holder.security.current.getAuditLog({ action, result: "denied" })).filter((e) => e.body.userId === peer).map((e) => e.body.reason ?? "");
}

const HOUR = 3600_000;

/**
 * `count` nodes formed into a mesh (those `runs` names run the report agent,
 * unsandboxed), once node `viewer` sees every other as a member, and an empty
 * source directory named from `prefix`; all undone after the test.
 */
async function meshWithSource(count: number, runs: (i: number) => boolean, viewer: number, prefix: string): Promise<{ mesh: Awaited<ReturnType<typeof startNodes>>; src: ReturnType<typeof tempDir> }> {
  const mesh = await startNodes(count, (i) => ({ agents: runs(i) ? [reporter] : [], options: { sandbox: "off" } }));
  made.push(mesh.stop);
  await formMesh(mesh.nodes);
  await eventually(async () => (await mesh.nodes[viewer]!.directory.members()).length === count - 1, 10_000, "members");
  const src = tempDir(prefix);
  made.push(() => src.remove());
  return { mesh, src };
}

/** `node` stops serving blobs as a member should and claims every tree: it serves `index` as any tree's manifest and `read` as any blob. */
async function impostor(node: CoderClawNode, index: Uint8Array, read: () => Promise<Uint8Array | undefined>): Promise<BlobService> {
  await node.blobs.service.stop();
  return startBlobService({
    libp2p: node.libp2p,
    isMember: () => true,
    authorize: () => true,
    treeBlobs: () => ({ has: () => true }) as unknown as ReadonlySet<string>,
    tree: () => index,
    sources: [{ has: () => true, read }],
  });
}

describe("a task's trees fetched from any member that holds them, by a grant its submitter signed", () => {
  it("A submits, B runs, A goes away: C fetches the result and the tree from B with A's grant; no grant, an expired, a forged, a misdirected and another tree's grant are refused and audited on B; a member naming the tree in its own submission gains no right to grant it; a lying holder is cut off and C completes from B; B serves the result and the tree it ran again after a restart; a revoked submitter's grant counts for nothing", async () => {
    // F founds the mesh (and later turns liar and revokes A); A submits; B runs; C is granted.
    const { mesh, src } = await meshWithSource(4, (i) => i === 2, 1, "cc-grant-src-");
    const [f, a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode, CoderClawNode];

    const contents = Array.from({ length: 50 }, (_, i) => `${i}`.padEnd(4096, "x"));
    contents.forEach((text, i) => writeFileSync(join(src.path, `f${i}.txt`), text));
    const digests = contents.map((text) => createHash("sha256").update(text).digest("hex"));
    const task = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, route: b.peerId, artifacts: ["out/*.txt"] });
    const result = await completedResult(a, task.id);
    expect(result.heldBy).toBe(b.peerId);
    const { metadata, placement } = (await a.adapter.getTaskState(task.id))!;
    const spec = metadata!.workspace as WorkspaceSpec;
    const attemptId = placement!.attemptId!;
    // C's own replica, not A's answer: A goes away before C reads the task.
    await eventually(async () => (await c.core.engine.getTask(task.id))?.status === "completed", 10_000, "the task replicated to C");

    // Every grant A will give is signed while A runs; then A goes away.
    const { grant } = await grantTaskResult(a.adapter, a.workspaces, task.id, c.peerId, Date.now() + HOUR);
    // The same through the control socket's call, as `coderclaw task grant <id> --to <C>` makes it.
    const token = (await runAdmin(a, "task.grant", { taskId: task.id, grantee: c.peerId, ttlMs: HOUR })) as { grant: string; tree: string };
    expect(token.tree).toBe(result.tree);
    const treeGrant = a.workspaces.grant(spec.tree, c.peerId, Date.now() + HOUR);
    const expired = a.workspaces.grant(result.tree, c.peerId, Date.now() - 1);
    const forB = a.workspaces.grant(result.tree, b.peerId, Date.now() + HOUR);
    const forF = a.workspaces.grant(result.tree, f.peerId, Date.now() + HOUR);
    const { sig, ...signed } = decodeCanonical(grant, { maxBytes: 1024, maxDepth: 2 }) as { sig: Uint8Array };
    const tampered = encodeCanonical({ ...signed, sig: sig.map((byte, i) => (i === 0 ? byte ^ 1 : byte)) });
    await expect(grantTaskResult(c.adapter, c.workspaces, task.id, c.peerId, Date.now() + HOUR)).rejects.toThrow(/only its submitter can grant/);
    const byC = c.workspaces.grant(result.tree, c.peerId, Date.now() + HOUR);
    await a.stop();

    // Refused on B, each audited there with what was wrong; C fetched nothing.
    const cases: Array<[string, Uint8Array | undefined, RegExp]> = [
      ["no grant", undefined, /^no grant$/],
      ["expired", expired, /expired at/],
      ["forged: signed by C", byC, new RegExp(`signed by ${c.peerId}, not by the tree's submitter ${a.peerId}`)],
      ["forged: signature altered", tampered, /signature does not verify/],
      ["for another grantee", forB, new RegExp(`a grant for ${b.peerId}, presented by ${c.peerId}`)],
      ["for another tree", treeGrant, new RegExp(`a grant for tree ${spec.tree}, not ${result.tree}`)],
    ];
    for (const [what, presented, reason] of cases) {
      const before = (await refusals(b, "blobs.read", c.peerId)).length;
      await expect(taskChanges(c.adapter, c.workspaces, task.id, undefined, { holders: [b.peerId], ...(presented && { grant: presented }) }), what).rejects.toThrow(/PERMISSION_DENIED|may not read/);
      await eventually(async () => (await refusals(b, "blobs.read", c.peerId)).length > before, 10_000, `${what}: audited on B`);
      expect((await refusals(b, "blobs.read", c.peerId)).at(-1), what).toMatch(reason);
    }
    expect(await c.blobStore.getTree(result.tree)).toBeUndefined();

    // F names A's tree (its id replicated with the task) in a submission of its own to B, which holds that tree already:
    // B asks F for it, F cannot serve it, and the task fails before any agent sees the tree. F does not become a submitter
    // of the tree on B either: a grant F signs for itself is refused and audited.
    // (F's own node refuses a caller naming a tree: F sends the request itself.)
    const named = await f.client.submit(b.peerId, { description: "report", input: "", agentId: "report", metadata: { workspace: { tree: spec.tree, bytes: spec.bytes, files: spec.files } } });
    await eventually(async () => ["completed", "failed"].includes((await f.client.get(b.peerId, named.id))?.status ?? ""), 30_000, "F's task ended");
    const namedState = (await f.client.get(b.peerId, named.id))!;
    expect(namedState.status).toBe("failed");
    expect(namedState.error).toContain(`tree ${spec.tree}: no member gave it`);
    const selfGranted = f.workspaces.grant(spec.tree, f.peerId, Date.now() + HOUR);
    await expect(f.blobs.client.fetchTree(b.peerId, spec.tree, { grant: selfGranted })).rejects.toMatchObject({ code: "PERMISSION_DENIED" });
    await eventually(async () => (await refusals(b, "blobs.read", f.peerId)).some((r) => r.includes(`signed by ${f.peerId}, not by the tree's submitter ${a.peerId}`)), 10_000, "F's own grant refused and audited on B");

    // F turns liar: it claims the result and sends other bytes. C asks it first, cuts it off, audits it, and completes from B.
    const liar = await impostor(f, (await b.blobStore.getTree(result.tree))!, async () => new Uint8Array(100).fill(7));
    try {
      // As `coderclaw task diff <id> --grant <token> --from <F> <B>` on C asks its node.
      await expect(runAdmin(c, "task.changes", { taskId: task.id, grant: "not a token!" })).rejects.toMatchObject({ code: "INVALID_INPUT", field: "grant" });
      const changes = (await runAdmin(c, "task.changes", { taskId: task.id, grant: token.grant, from: [f.peerId, b.peerId] })) as { files: Array<{ kind: string; path: string; chunks: string[] }> };
      // The files, then their bytes, as the CLI reads them.
      const bytesOf = async (digests: string[]): Promise<string> => {
        const { blobs } = (await runAdmin(c, "task.blobs", { taskId: task.id, digests, grant: token.grant })) as { blobs: string[] };
        return Buffer.concat(blobs.map((b64) => Buffer.from(b64, "base64"))).toString();
      };
      expect(await bytesOf(changes.files.find((x) => x.kind === "patch")!.chunks)).toContain("+++ b/out/report.txt");
      const artifacts = changes.files.filter((x) => x.kind === "artifact");
      expect(await Promise.all(artifacts.map(async (x) => [x.path, await bytesOf(x.chunks)]))).toEqual([["out/report.txt", "reported\n"]]);
      // Only the blobs of the task's result: any other digest is refused.
      await expect(runAdmin(c, "task.blobs", { taskId: task.id, digests: [spec.tree], grant: token.grant })).rejects.toMatchObject({ code: "INVALID_INPUT", field: "digest" });
    } finally {
      await liar.stop();
    }
    const cut = await refusals(c, "blobs.fetch", f.peerId);
    expect(cut.length).toBeGreaterThan(0);
    expect(cut[0]).toMatch(new RegExp(`cut off: blob [0-9a-f]{64}: the bytes sent by ${f.peerId} do not hash to it`));

    // The snapshot A sent, from its executor: the attempt B was sent carries A's grant for B, and an attempt A would send C
    // (its request carrying A's grant for C) is prepared on C from B, every blob checked, A being gone.
    const sentToB = (await b.core.engine.getTask(attemptId))!.metadata!;
    expect(readTreeGrant(executorGrantOf(sentToB)!)).toMatchObject({ tree: spec.tree, grantee: b.peerId, issuer: a.peerId });
    expect(await c.blobStore.missing(digests)).toHaveLength(50);
    const request = withExecutorGrant({ description: "report", input: "", agentId: "report", metadata: { workspace: spec } }, treeGrant);
    const dir = await c.workspaces.prepare({ id: "attempt-on-c", request, submittedBy: a.peerId }, AbortSignal.timeout(30_000));
    expect(readFileSync(join(dir, "f7.txt"), "utf8")).toBe(contents[7]);
    expect(await c.blobStore.missing(digests)).toEqual([]);
    await c.workspaces.release("attempt-on-c");
    expect((await c.blobs.client.fetchTree(b.peerId, spec.tree, { grant: treeGrant })).byteLength).toBeGreaterThan(0);

    // C serves the result it fetched on to the member A granted it to, A and B aside: F (itself again) fetches it from C.
    const fromC = await f.blobs.client.fetchTree(c.peerId, result.tree, { grant: forF });
    expect(createHash("sha256").update(fromC).digest("hex")).toBe(result.tree);
    await expect(f.blobs.client.fetchTree(c.peerId, result.tree)).rejects.toMatchObject({ code: "PERMISSION_DENIED" });

    // Over F's HTTP API with A's token for F: a token that is none is refused naming the parameter; F fetches the result.
    const http = await createHttpServer({ adapter: f.adapter, authenticate: () => ({}), changes: (id, sources) => openTaskChanges(f.adapter, f.workspaces, id, undefined, sources), port: 0 });
    try {
      const get = (query: string): Promise<Response> => fetch(`${http.url}/v1/tasks/${task.id}/patch${query}`, { headers: { authorization: "Bearer t" } });
      const bad = await get("?grant=not%20a%20token");
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain("grant");
      const patch = await get(`?grant=${toBase64Url(forF)}`);
      expect(patch.status).toBe(200);
      expect(await patch.text()).toContain("+++ b/out/report.txt");
    } finally {
      await http.close();
    }

    // B restarts: it serves the result again to a member A granted it to (the result's submitter is on record with it).
    await b.stop();
    const b2 = await createNode({ dataDir: mesh.homes[2]!, mdns: false, inboundConnectionThreshold: 100 });
    made.push(() => b2.stop());
    await c.dial(b2.multiaddrs()[0]!);
    const again = await c.blobs.client.fetchTree(b2.peerId, result.tree, { grant });
    expect(createHash("sha256").update(again).digest("hex")).toBe(result.tree);
    // And the tree it ran, fetched from A, to a member A granted that tree to: A's grants for it still count on B.
    const input = await c.blobs.client.fetchTree(b2.peerId, spec.tree, { grant: treeGrant });
    expect(createHash("sha256").update(input).digest("hex")).toBe(spec.tree);
    await expect(c.blobs.client.fetchTree(b2.peerId, spec.tree)).rejects.toMatchObject({ code: "PERMISSION_DENIED" });

    // Once A is revoked, A's grants count for nothing anywhere.
    await f.membership.revoke(a.peerId, "laptop stolen");
    await eventually(() => c.membership.isRevoked(a.peerId), 10_000, "A's revocation reached C");
    await expect(f.blobs.client.fetchTree(c.peerId, result.tree, { grant: forF })).rejects.toMatchObject({ code: "PERMISSION_DENIED" });
    await eventually(async () => (await refusals(c, "blobs.read", f.peerId)).some((r) => r.includes("which is revoked")), 10_000, "the revoked submitter's grant audited on C");
  }, 90_000);

  it("an executor fetches a task's tree from another member that holds it when the submitter cannot serve it, with the grant the task carries, and runs it", async () => {
    // A submits; B ran the tree before; C runs it now, while A's blob service is down (A's tasks still reach C).
    const { mesh, src } = await meshWithSource(3, (i) => i > 0, 0, "cc-grant-fallback-");
    const [a, b, c] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const contents = Array.from({ length: 30 }, (_, i) => `${i}`.padEnd(5000, "y"));
    contents.forEach((text, i) => writeFileSync(join(src.path, `f${i}.txt`), text));
    const digests = contents.map((text) => createHash("sha256").update(text).digest("hex"));
    const first = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, route: b.peerId });
    expect((await completedResult(a, first.id)).heldBy).toBe(b.peerId);
    expect(await b.blobStore.missing(digests)).toEqual([]);

    await a.blobs.service.stop();
    const servedBefore = b.blobs.service.counters(c.peerId).sent;
    const second = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, route: c.peerId, artifacts: ["out/*.txt"] });
    const result = await completedResult(a, second.id);
    expect(result.heldBy).toBe(c.peerId);
    // Every blob of the tree reached C, from B: the grant A put in the request let B serve a member A chose.
    expect(await c.blobStore.missing(digests)).toEqual([]);
    expect(b.blobs.service.counters(c.peerId).sent - servedBefore).toBeGreaterThan(contents.length * 5000);
    const { metadata, placement } = (await a.adapter.getTaskState(second.id))!;
    const sentToC = (await c.core.engine.getTask(placement!.attemptId!))!.metadata!;
    expect(readTreeGrant(executorGrantOf(sentToC)!)).toMatchObject({ tree: (metadata!.workspace as WorkspaceSpec).tree, grantee: c.peerId, issuer: a.peerId });
  }, 90_000);

  it("a holder that stalls is cut off at the stall limit, audited, and the fetch goes on from the next holder", async () => {
    const { mesh, src } = await meshWithSource(3, (i) => i === 1, 0, "cc-grant-stall-");
    const [a, b, s] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    writeFileSync(join(src.path, "a.txt"), "a\n");
    const task = await a.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, route: b.peerId });
    const result = await completedResult(a, task.id);

    // S claims the result and then sends nothing: A asks it first, cuts it off after the stall limit, and completes from B.
    const staller = await impostor(s, (await b.blobStore.getTree(result.tree))!, () => new Promise<Uint8Array | undefined>(() => undefined));
    try {
      const changes = await taskChanges(a.adapter, a.workspaces, task.id, undefined, { holders: [s.peerId] });
      expect(changes.patch.toString()).toContain("+++ b/out/report.txt");
    } finally {
      await staller.stop();
    }
    expect(await refusals(a, "blobs.fetch", s.peerId)).toEqual([expect.stringMatching(/^cut off: .*sent nothing for 10000 ms/)]);
  }, 90_000);
});
