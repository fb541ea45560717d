// Two mesh nodes in one process on 127.0.0.1: found a mesh, pair, and run a task
// on the other node, following its progress. Run: node examples/two-node-mesh.mjs
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, CoderClawRuntime } from "coderclaw/node";

const homes = [mkdtempSync(join(tmpdir(), "cc-example-a-")), mkdtempSync(join(tmpdir(), "cc-example-b-"))];
const [laptop, server] = await Promise.all(homes.map((dataDir) => createNode({ dataDir, mdns: false })));
try {
  await laptop.createMesh("example");
  const { invite } = await laptop.pairing.invite("trusted", 60_000);
  const joined = await server.pairing.join(invite);
  console.log("paired, comparison code", joined.comparisonCode);

  const runtime = new CoderClawRuntime(laptop.adapter, "distributed-cluster");
  const task = await laptop.adapter.submitTask({ description: "nap", input: "300 3", agentId: "sleep" }, { route: server.peerId });
  console.log("runs on the other node:", task.placement?.runsOn === server.peerId);
  for await (const update of runtime.streamTaskUpdates(task.id)) console.log(update.status, update.progress ?? "");
} finally {
  await Promise.all([laptop.stop(), server.stop()]);
  for (const h of homes) rmSync(h, { recursive: true, force: true });
}
