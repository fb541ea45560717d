import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { openBlobStore } from "../../src/workspace/blob-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("trees served by a submitter", () => {
  it("are bounded: the least recently shared or granted tree stops being served, and its working tree source with it", async () => {
    const home = tempDir("cc-shared-");
    cleanups.push(() => home.remove());
    const store = await openBlobStore({ dir: join(home.path, "blobs") });
    cleanups.push(() => store.close());
    const shared = new SharedTrees(2);
    const served = new Set<string>();
    const ws = new CodeWorkspaces({
      selfId: "self",
      dataDir: home.path,
      store,
      shared,
      client: () => undefined,
      addSource: () => {
        const name = `source${served.size}-${Math.random()}`;
        served.add(name);
        return () => served.delete(name);
      },
    });
    const repo = (name: string): string => {
      const dir = join(home.path, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "file.txt"), name);
      return dir;
    };
    const a = await ws.snapshot(repo("a"));
    const b = await ws.snapshot(repo("b"));
    // Granting `a` to a member makes it the most recently used: `b` goes first.
    expect(shared.grant(a.tree, "peer")).toBe(true);
    const c = await ws.snapshot(repo("c"));
    expect([shared.has(a.tree), shared.has(b.tree), shared.has(c.tree)]).toEqual([true, false, true]);
    expect(served.size).toBe(2);
    expect(shared.authorize("peer", a.tree)).toBe(true);
    ws.close();
    expect(served.size).toBe(0);
  });
});
