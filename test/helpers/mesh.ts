import type { Stream } from "@libp2p/interface";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { decodeStatement } from "../../identity/index.js";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/create-node.js";
import { signRoleGrant } from "../../src/security/index.js";
import { tempDir } from "./temp-dir.js";

/** Nodes on 127.0.0.1 in this process, with temp homes and mDNS off; `stop()` removes everything. */
export async function startNodes(count: number, extra: (i: number) => { agents?: AgentExecutor[]; options?: NodeOptions } = () => ({})): Promise<{ nodes: CoderClawNode[]; homes: string[]; stop: () => Promise<void> }> {
  const nodes: CoderClawNode[] = [];
  const dirs = Array.from({ length: count }, () => tempDir("cc-mesh-"));
  for (let i = 0; i < count; i++) {
    const e = extra(i);
    nodes.push(
      await createNode({
        dataDir: dirs[i]!.path,
        mdns: false,
        agents: createBuiltinRegistry(e.agents ?? []),
        leaseIntervalMs: 200,
        leaseTimeoutMs: 1500,
        inboundConnectionThreshold: 100,
        ...e.options,
      }),
    );
  }
  return {
    nodes,
    homes: dirs.map((d) => d.path),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      for (const d of dirs) d.remove();
    },
  };
}

/** Node 0 founds a mesh and pairs every other node into it at `level`. */
export async function formMesh(nodes: CoderClawNode[], level: "verified" | "trusted" = "trusted"): Promise<string> {
  const [founder, ...rest] = nodes;
  const meshId = await founder!.createMesh("test mesh");
  for (const n of rest) {
    const { invite } = await founder!.pairing.invite(level, 60_000);
    await n.pairing.join(invite);
  }
  // Everyone dials everyone, so routing can ask members directly.
  for (const a of nodes) for (const b of nodes) if (a !== b) await a.dial(b.multiaddrs()[0]!).catch(() => undefined);
  return meshId;
}

/** Poll until `pred` holds, bounded. `what` may be a function, asked only on failure, so the error can say what was left. */
export async function eventually(pred: () => Promise<boolean> | boolean, ms = 10_000, what: string | (() => Promise<string> | string) = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${typeof what === "string" ? what : await what()} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A raw stream of `protocol` from `from` to `to`, as modified code would open
 * one. A connection just made (or one being retired for the pair's other
 * connection) may refuse a first stream while it settles: the dial is tried
 * again, as an attacker would, up to six times 200 ms apart.
 */
export async function openRawStream(from: CoderClawNode, to: CoderClawNode, protocol: string): Promise<Stream> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await from.libp2p.dialProtocol(to.libp2p.peerId, protocol, { signal: AbortSignal.timeout(5_000) });
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * A session on `node` for `subject` holding `roles`: the node (its mesh's
 * founder, so an admin) signs the grant into its statement set, as `coderclaw
 * roles grant` does, then opens the session. Answers its bearer token.
 */
export async function grantedSession(node: CoderClawNode, subject: string, roles: readonly string[], options: { readOnly?: boolean } = {}): Promise<string> {
  await node.membership.add([decodeStatement(signRoleGrant(node.identity, { subject, roles: [...roles], meshId: node.membership.meshId! }))]);
  return (await node.security.current.createSession(subject, node.peerId, roles, options)).token;
}
