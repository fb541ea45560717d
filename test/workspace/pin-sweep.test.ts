import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { openBlobStore, sha256Hex, type BlobStore } from "../../src/workspace/blob-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function workspaces(dataDir: string, store: BlobStore): CodeWorkspaces {
  return new CodeWorkspaces({ selfId: "self", dataDir, store, shared: new SharedTrees(), client: () => undefined, addSource: () => () => undefined });
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
    expect(await workspaces(home.path, store).sweep()).toBe(1);
    expect([store.refCount(sha256Hex(a)), store.refCount(sha256Hex(b))]).toEqual([0, 1]);
    expect(store.holders()).toEqual(["result:kept"]);
    for (const left of ["git/killed", "tasks/killed", "tasks/other.partial-0a1b2c"]) expect(existsSync(join(home.path, "workspaces", left)), left).toBe(false);
    await store.close();
    store = await openBlobStore({ dir });
    expect(store.holders()).toEqual(["result:kept"]);
  });
});
