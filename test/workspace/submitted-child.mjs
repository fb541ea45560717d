// A submitter for the SIGKILL test: snapshots a directory over and over, one
// file changed each time, as a submission does before its request is signed
// (tree and pieces stored, pinned and recorded), printing each tree once its
// snapshot resolved.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CodeWorkspaces } from "../../dist/node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../dist/node/workspaces/shared-trees.js";
import { SubmittedTrees } from "../../dist/node/workspaces/submitted-trees.js";
import { openBlobStore } from "../../dist/src/workspace/blob-store.js";

const [home, repo] = process.argv.slice(2);
const store = await openBlobStore({ dir: join(home, "blobs"), fsync: false });
const submitted = await SubmittedTrees.open(join(home, "workspaces", "submitted"), () => undefined);
const ws = new CodeWorkspaces({ selfId: "self", dataDir: home, store, shared: new SharedTrees(), submitted, client: () => undefined, addSource: () => () => undefined });
for (let i = 0; ; i++) {
  writeFileSync(join(repo, "changing.txt"), `${process.pid} ${i}\n`);
  const spec = await ws.snapshot(repo);
  process.stdout.write(`snapshot ${spec.tree}\n`);
}
