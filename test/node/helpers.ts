import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { createMeshLibp2p, type AdmitPeer, type MeshLibp2p } from "../../node/libp2p/create-libp2p.js";

/** Options of {@link startNodes}. */
export interface StartNodesOptions {
  /** Membership decision of node `index`; default admits everyone. */
  admit?: (index: number) => AdmitPeer;
  /** Device keys of the nodes, by index; generated when absent. */
  keys?: PrivateKey[];
}

/** `n` started mesh nodes on 127.0.0.1 with mDNS off, not yet connected. */
export async function startNodes(n: number, options: StartNodesOptions = {}): Promise<MeshLibp2p[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) =>
      createMeshLibp2p({
        privateKey: options.keys?.[i] ?? (await generateKeyPair("Ed25519")),
        mdns: false,
        admit: options.admit?.(i) ?? (() => true),
        inboundConnectionThreshold: 1000,
      }),
    ),
  );
}

/** Dial `b` from `a` on its first listen address. */
export async function connect(a: MeshLibp2p, b: MeshLibp2p): Promise<void> {
  const addr = b.getMultiaddrs()[0];
  if (addr === undefined) throw new Error("node has no listen address");
  await a.dial(addr, { signal: AbortSignal.timeout(5_000) });
}

/** Dial every pair once. */
export async function connectAll(nodes: MeshLibp2p[]): Promise<void> {
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) await connect(nodes[i] as MeshLibp2p, nodes[j] as MeshLibp2p);
  }
}

/** Stop every node, tolerating ones already stopped. */
export async function stopAll(nodes: MeshLibp2p[]): Promise<void> {
  await Promise.allSettled(nodes.map((n) => n.stop()));
}

/** Poll `check` until it holds or `timeoutMs` passes. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
