import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode } from "../../node/index.js";
import { createHttpServer, nodeCodeUploads, type HttpServer } from "../../node/http/index.js";
import { openTaskChanges } from "../../node/workspaces/task-result.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { encodeBlobFrames } from "../../src/workspace/blob-frames.js";
import { blobDigest, blobsOf } from "../../src/workspace/manifest.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { reportAgent } from "../helpers/report-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const reporter = reportAgent((workspace) => `files: ${readdirSync(join(workspace, "files")).length}\n`);

/** A's HTTP API taking code, each bearer token its own session. */
async function serve(a: CoderClawNode): Promise<HttpServer> {
  const http = await createHttpServer({
    adapter: a.adapter,
    authenticate: (token) => ({ session: token }),
    sessionIdOf: (ctx) => ctx.session,
    changes: (id) => openTaskChanges(a.adapter, a.workspaces, id),
    uploads: nodeCodeUploads(a),
    port: 0,
  });
  cleanups.push(() => http.close());
  return http;
}

/** An HTTP client of `url` as `token`, counting the bytes of blobs it sends. */
function client(url: string, token: string): { adapter: HTTPTransportAdapter; sent: () => number; bodies: () => number } {
  let sent = 0;
  let bodies = 0;
  const counting: typeof fetch = async (input, init) => {
    if (String(input).endsWith("/v1/blobs") && init?.body instanceof Uint8Array) {
      sent += init.body.byteLength;
      bodies++;
    }
    return fetch(input, init);
  };
  return { adapter: new HTTPTransportAdapter({ baseUrl: url, token, fetch: counting }), sent: () => sent, bodies: () => bodies };
}

function tree(dir: string): void {
  mkdirSync(join(dir, "files"));
  for (let i = 0; i < 1000; i++) writeFileSync(join(dir, "files", `f${i}.txt`), `${i}`.padEnd(1024, "x"));
}

async function outcome(adapter: HTTPTransportAdapter, id: string): Promise<string> {
  for await (const _ of adapter.streamTaskUpdates(id));
  const state = (await adapter.getTaskState(id))!;
  return state.error === undefined ? state.status : `${state.status}: ${state.error}`;
}

describe("code sent with a task over the HTTP API", () => {
  it("runs on a member, comes back as a patch and artifacts; a second send moves what changed; each session sends and names only its own blobs and trees", async () => {
    const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [reporter] : [], options: { sandbox: "off" } }));
    cleanups.push(mesh.stop);
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);
    await eventually(async () => (await a.directory.members()).length === 1, 10_000, "members");
    const http = await serve(a);
    const src = tempDir("cc-upload-src-");
    cleanups.push(() => src.remove());
    tree(src.path);
    // Nine chunks that do not fit one body of blobs.
    writeFileSync(join(src.path, "big.bin"), randomBytes(9 * 1024 * 1024));

    const alice = client(http.url, "alice");
    const first = await alice.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path, artifacts: ["out/*.txt"] });
    expect(await outcome(alice.adapter, first.id)).toBe("completed");
    expect((await a.adapter.getTaskState(first.id))!.placement?.runsOn).toBe(b.peerId);
    expect(alice.sent()).toBeGreaterThan(1000 * 1024 + 9 * 1024 * 1024);
    expect(alice.bodies()).toBeGreaterThanOrEqual(2);
    const patch = await fetch(`${http.url}/v1/tasks/${first.id}/patch`, { headers: { authorization: "Bearer alice" } });
    expect(await patch.text()).toContain("+++ b/out/report.txt");
    const artifact = await fetch(`${http.url}/v1/tasks/${first.id}/artifacts/out/report.txt`, { headers: { authorization: "Bearer alice" } });
    expect(await artifact.text()).toBe("files: 1000\n");

    // One file changed: the second send moves that file and the manifest's piece that names it, not the tree.
    writeFileSync(join(src.path, "files", "f7.txt"), "changed".padEnd(1024, "y"));
    const before = alice.sent();
    const second = await alice.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { repo: src.path });
    expect(await outcome(alice.adapter, second.id)).toBe("completed");
    expect(alice.sent() - before).toBeLessThan(1024 + 64 * 1024);

    // Another session learns nothing of what alice sent, and can name none of it.
    const snap = await snapshotDirectory(src.path);
    const digests = [...blobsOf(snap.manifest), ...snap.pieces.map((p) => p.digest)];
    const call = (token: string, method: string, path: string, body?: Uint8Array | object): Promise<Response> =>
      fetch(`${http.url}/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": body instanceof Uint8Array ? "application/octet-stream" : "application/json" },
        ...(body !== undefined && { body: body instanceof Uint8Array ? body : JSON.stringify(body) }),
      });
    const asked = await call("mallory", "POST", "/blobs/missing", { digests });
    expect(((await asked.json()) as { missing: string[] }).missing.length).toBe(new Set(digests).size);
    expect(((await (await call("alice", "POST", "/blobs/missing", { digests })).json()) as { missing: string[] }).missing).toEqual([]);
    const named = await call("mallory", "PUT", `/trees/${snap.treeId}`, snap.index);
    expect(named.status).toBe(400);
    expect(await named.text()).toMatch(/piece [0-9a-f]{64} of the manifest was not sent.*index\.pieces\[0\]/);
    const submitted = await call("mallory", "POST", `/tasks?tree=${snap.treeId}`, { description: "x", input: "", agentId: "report" });
    expect(submitted.status).toBe(400);
    expect(await submitted.text()).toMatch(/was not uploaded by this session/);
    // Mallory sends the pieces (it knows them: a manifest is no secret) but not the files: still refused, naming a file.
    const pieces = await call("mallory", "POST", "/blobs", encodeBlobFrames(snap.pieces.map((p) => [p.digest, p.bytes])));
    expect(pieces.status).toBe(200);
    const noFiles = await call("mallory", "PUT", `/trees/${snap.treeId}`, snap.index);
    expect(noFiles.status).toBe(400);
    expect(((await noFiles.json()) as { error: { message: string } }).error.message).toMatch(/blob [0-9a-f]{64} of "big\.bin" was not sent/);

    // Bytes that do not hash to their digest, a frame cut short and a frame longer than a chunk: refused, nothing stored.
    const forged = new TextEncoder().encode("not what the digest names");
    const wrong = "ab".repeat(32);
    const bad = await call("mallory", "POST", "/blobs", encodeBlobFrames([[blobDigest(new Uint8Array([1])), new Uint8Array([1])], [wrong, forged]]));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/do not hash to (ab){32}.*blobs\[1\]/);
    expect(a.blobStore.has(blobDigest(new Uint8Array([1])))).toBe(false);
    const cut = encodeBlobFrames([[blobDigest(forged), forged]]).subarray(0, 40);
    expect(await (await call("mallory", "POST", "/blobs", cut)).text()).toMatch(/ends before the 25 bytes/);
    const long = Buffer.alloc(36);
    long.writeUInt32BE(2 * 1024 * 1024, 32);
    expect(await (await call("mallory", "POST", "/blobs", long)).text()).toMatch(/over the chunk size/);
  }, 60_000);

  it("a task waiting for its executor outlives a restart of the node it was uploaded to, which serves the tree from its store", async () => {
    const mesh = await startNodes(2, (i) => ({ agents: i === 1 ? [reporter] : [], options: { sandbox: "off" } }));
    let [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    const restarted: CoderClawNode[] = [];
    cleanups.push(async () => {
      await Promise.all(restarted.map((n) => n.stop()));
      await mesh.stop();
    });
    await formMesh(mesh.nodes);
    await eventually(async () => (await a.directory.members()).length === 1, 10_000, "members");
    const executor = b.peerId;
    await b.stop();
    const http = await serve(a);
    const src = tempDir("cc-upload-src-");
    cleanups.push(() => src.remove());
    tree(src.path);
    const alice = client(http.url, "alice");
    const carried = await alice.adapter.submitTask({ description: "report", input: "", agentId: "report" }, { route: executor, repo: src.path });
    expect(carried.status).toBe("pending");
    await http.close();
    await a.stop();
    // The uploaded tree is on record without a directory: nothing but the store serves it.
    const records = readdirSync(join(mesh.homes[0]!, "workspaces", "submitted"));
    expect(records).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(mesh.homes[0]!, "workspaces", "submitted", records[0]!), "utf8")).dir).toBeUndefined();
    src.remove();

    const options = { mdns: false, leaseIntervalMs: 200, leaseTimeoutMs: 1500, inboundConnectionThreshold: 100, sandbox: "off" as const };
    a = await createNode({ dataDir: mesh.homes[0]!, agents: createBuiltinRegistry([]), ...options });
    restarted.push(a);
    b = await createNode({ dataDir: mesh.homes[1]!, agents: createBuiltinRegistry([reporter]), ...options });
    restarted.push(b);
    await a.dial(b.multiaddrs()[0]!);
    await eventually(async () => (await a.adapter.getTaskState(carried.id))?.status === "completed", 20_000, async () => JSON.stringify(await a.adapter.getTaskState(carried.id)));
    expect((await openTaskChanges(a.adapter, a.workspaces, carried.id)).files.map((f) => f.path)).toContain("changes.patch");
  }, 60_000);
});
