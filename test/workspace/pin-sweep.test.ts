import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { SubmittedTrees } from "../../node/workspaces/submitted-trees.js";
import { openBlobStore, sha256Hex, type BlobStore } from "../../src/workspace/blob-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const submittedIn = (dataDir: string): Promise<SubmittedTrees> => SubmittedTrees.open(join(dataDir, "workspaces", "submitted"), (file, error) => {
  throw new Error(`${file}: ${error.message}`);
});

async function workspaces(dataDir: string, store: BlobStore): Promise<CodeWorkspaces> {
  return new CodeWorkspaces({ selfId: "self", dataDir, store, shared: new SharedTrees(), submitted: await submittedIn(dataDir), client: () => undefined, addSource: () => () => undefined });
}

describe("leftovers of tasks killed while they ran", () => {
  it("a restarted node unpins the blobs of tasks no longer running and removes their trees, half-made ones and change tracking; results stay pinned", async () => {
    const home = tempDir("cc-sweep-");
    cleanups.push(() => home.remove());
    const dir = join(home.path, "blobs");
    let store = await openBlobStore({ dir });
    const [a, b] = [randomBytes(1000), randomBytes(1000)];
    await store.put(a);
    await store.put(b);
    await store.pin("task:killed", [sha256Hex(a), sha256Hex(b)]);
    await store.pin("result:kept", [sha256Hex(b)]);
    for (const left of ["git/killed", "tasks/killed", "tasks/other.partial-0a1b2c"]) mkdirSync(join(home.path, "workspaces", left), { recursive: true });
    // The process dies here: no release, no unpin.
    await store.close();

    store = await openBlobStore({ dir });
    cleanups.push(() => store.close());
    expect(store.refCount(sha256Hex(a))).toBe(1);
    expect(await (await workspaces(home.path, store)).sweep()).toBe(1);
    expect([store.refCount(sha256Hex(a)), store.refCount(sha256Hex(b))]).toEqual([0, 1]);
    expect(store.holders()).toEqual(["result:kept"]);
    for (const left of ["git/killed", "tasks/killed", "tasks/other.partial-0a1b2c"]) expect(existsSync(join(home.path, "workspaces", left)), left).toBe(false);
    await store.close();
    store = await openBlobStore({ dir });
    expect(store.holders()).toEqual(["result:kept"]);
  });
});

describe("result pins", () => {
  it("stay until their retention passes, then the quota reclaims them; releaseResult lets one go at once", async () => {
    const home = tempDir("cc-results-");
    cleanups.push(() => home.remove());
    const store = await openBlobStore({ dir: join(home.path, "blobs"), quotaBytes: 3000 });
    cleanups.push(() => store.close());
    const retention = 60_000;
    const ws = new CodeWorkspaces({ selfId: "self", dataDir: home.path, store, shared: new SharedTrees(), submitted: await submittedIn(home.path), client: () => undefined, addSource: () => () => undefined, resultRetentionMs: retention });
    const results = [randomBytes(1000), randomBytes(1000), randomBytes(1000)];
    for (const [i, bytes] of results.entries()) {
      await store.put(bytes);
      await store.pin(`result:t${i}`, [sha256Hex(bytes)]);
    }
    const start = Date.now();
    // First seen now: each result lives a full retention from here.
    expect(await ws.expireResults(start)).toBe(0);
    await expect(store.put(randomBytes(1500))).rejects.toMatchObject({ code: "QUOTA" });
    expect(await ws.expireResults(start + retention - 1000)).toBe(0);

    await ws.releaseResult("t0");
    expect(store.holders().sort()).toEqual(["result:t1", "result:t2"]);
    await expect(store.put(randomBytes(1500))).rejects.toMatchObject({ code: "QUOTA" });
    await store.put(randomBytes(900));

    expect(await ws.expireResults(start + retention + 1000)).toBe(2);
    expect(store.holders()).toEqual([]);
    await store.put(randomBytes(1500));
    await store.put(randomBytes(1400));
  });
});
