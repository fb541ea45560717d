/**
 * A process hosting some nodes of the bench:scale `form` part, run with
 * `fork()`: each node has the built-in agents and a temporary home; the parent
 * asks them, over IPC, to join its mesh with an invite, how many members each
 * knows, and for the CPU time, socket bytes and connections opened of this process.
 */
import "../src/polyfills.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../node/create-node.js";
import { socketBytes } from "./socket-bytes.js";
import { messageTally, startMessageTally } from "./message-tally.js";

if (process.env.CC_TALLY === "1") startMessageTally();

/** Messages from the parent; each gets one reply. */
export type HostRequest = { start: number } | { join: { index: number; invite: string } } | { members: true } | { cpu: true } | { stop: true };

const nodes: Array<{ node: CoderClawNode; dir: string }> = [];
/** Connections the nodes of this process opened or accepted: churn shows as connections opened in a mesh that stays formed. */
let opened = 0;
const reply = (m: unknown): void => void process.send?.(m);

async function answer(m: HostRequest): Promise<unknown> {
  if ("start" in m) {
    for (let i = 0; i < m.start; i++) {
      const dir = mkdtempSync(join(tmpdir(), "cc-bench-host-"));
      const node = await createNode({ dataDir: dir, mdns: false, agents: createBuiltinRegistry(), maxConcurrentTasks: 64, inboundConnectionThreshold: 1000 });
      node.libp2p.addEventListener("connection:open", () => void opened++);
      nodes.push({ dir, node });
    }
    return { peers: nodes.map(({ node }) => node.peerId) };
  }
  if ("join" in m) {
    await nodes[m.join.index]!.node.pairing.join(m.join.invite);
    return { ok: true };
  }
  if ("members" in m) return { members: nodes.map(({ node }) => node.membership.devices().filter((d) => node.membership.isMember(d.deviceId)).length) };
  if ("cpu" in m) {
    const c = process.cpuUsage();
    return { cpuMs: (c.user + c.system) / 1000, bytes: socketBytes(), opened, tally: messageTally() };
  }
  await Promise.all(nodes.map(({ node }) => node.stop()));
  for (const { dir } of nodes) rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

process.on("message", (m: HostRequest) => {
  answer(m).then(reply, (err: unknown) => reply({ error: (err as Error).message }));
});
reply({ ready: true });
