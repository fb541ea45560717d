/**
 * The executing node of the two-process routed-task benchmark, run with
 * `fork()`: a node with the built-in agents and a temporary home that joins the
 * parent's mesh with the invite it is sent, echoes bytes on a bare protocol for
 * the raw round-trip baseline, and reports its CPU time when asked.
 */
import "../src/polyfills.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { createNode } from "../node/create-node.js";
import { serveRawEcho } from "./raw-echo.js";

/** Messages from the parent. */
export type ExecutorRequest = { join: string } | { cpu: true } | { stop: true };

const dataDir = mkdtempSync(join(tmpdir(), "cc-bench-executor-"));
const node = await createNode({ dataDir, mdns: false, agents: createBuiltinRegistry(), maxConcurrentTasks: 64 });
await serveRawEcho(node.libp2p);
const reply = (m: unknown): void => void process.send?.(m);
process.on("message", (m: ExecutorRequest) => {
  void (async () => {
    if ("join" in m) {
      await node.pairing.join(m.join);
      reply({ peerId: node.peerId, addr: node.multiaddrs()[0] });
    } else if ("cpu" in m) {
      const c = process.cpuUsage();
      reply({ cpuMs: (c.user + c.system) / 1000 });
    } else {
      await node.stop();
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    }
  })().catch((err: unknown) => {
    reply({ error: (err as Error).message });
  });
});
reply({ ready: true });
