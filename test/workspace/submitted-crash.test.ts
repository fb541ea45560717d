import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { SubmittedTrees } from "../../node/workspaces/submitted-trees.js";
import { openBlobStore } from "../../src/workspace/blob-store.js";
import { killAfterPrinted } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

const CHILD = fileURLToPath(new URL("./submitted-child.mjs", import.meta.url));
const BUILT = fileURLToPath(new URL("../../dist/node/workspaces/code-workspaces.js", import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it("a submitter SIGKILLed while it records snapshots keeps, after a restart, a pin for each recorded tree and none without a record", { timeout: 120_000 }, async () => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npm run build\` first (npm test does)`);
  const home = tempDir("cc-submitted-crash-");
  cleanups.push(() => home.remove());
  const repo = join(home.path, "repo");
  mkdirSync(repo);
  for (let i = 0; i < 20; i++) writeFileSync(join(repo, `file${i}.txt`), `content ${i}\n`.repeat(i * 50));
  const dataDir = join(home.path, "node");
  let snapshots = 0;
  // Kills at spread moments of a snapshot, 0 to 22 ms after the third: each snapshot pins its tree and writes its record within a few milliseconds.
  for (let round = 0; round < 12; round++) snapshots += (await killAfterPrinted(CHILD, [dataDir, repo], (lines) => lines.length >= 3, round * 2)).length;
  expect(snapshots).toBeGreaterThanOrEqual(12 * 3);

  const store = await openBlobStore({ dir: join(dataDir, "blobs") });
  cleanups.push(() => store.close());
  const submitted = await SubmittedTrees.open(join(dataDir, "workspaces", "submitted"), (file, error) => {
    throw new Error(`${file}: ${error.message}`);
  });
  const ws = new CodeWorkspaces({ selfId: "self", dataDir, store, shared: new SharedTrees(), submitted, client: () => undefined, addSource: () => () => undefined });
  await ws.sweep();
  const restored = await ws.restoreServed();
  const recorded = submitted.list().map((r) => r.tree).sort();
  const pinned = store.holders().filter((h) => h.startsWith("submitted:")).map((h) => h.slice("submitted:".length)).sort();
  expect(restored).toBe(recorded.length);
  expect(pinned).toEqual(recorded);
  for (const tree of recorded) expect(store.pinnedBy(`submitted:${tree}`).has(tree)).toBe(true);
});
