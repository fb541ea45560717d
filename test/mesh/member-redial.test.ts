import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode } from "../../node/create-node.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

/**
 * A restarted member finds the others from the addresses its home remembers. (On loopback the
 * mesh's own services redial a directly reachable member; a cut and an address change behind a
 * NAT, where they do not, are in test/reach/redial.test.ts.)
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const connected = (a: CoderClawNode, b: CoderClawNode): boolean => a.libp2p.getConnections().some((c) => c.remotePeer.toString() === b.peerId && c.status === "open");
const bookOf = (home: string): { peers: Array<{ peer: string; addrs: string[] }> } => {
  const file = join(home, "identity", "member-addresses.json");
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : { peers: [] };
};

describe("redialling members", () => {
  it("remembers members' addresses in the home: a restarted node with no bootstrap reconnects", { timeout: 60_000 }, async () => {
    const mesh = await startNodes(2);
    cleanups.push(mesh.stop);
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh([a, b]);
    await eventually(() => bookOf(mesh.homes[1]!).peers.some((p) => p.peer === a.peerId && p.addrs.includes(a.multiaddrs()[0]!.replace(`/p2p/${a.peerId}`, ""))), 10_000, "A's address in B's book");
    await b.stop();
    const again = await createNode({ dataDir: mesh.homes[1]!, mdns: false, agents: createBuiltinRegistry([]), inboundConnectionThreshold: 100 });
    cleanups.push(() => again.stop());
    await eventually(() => connected(again, a), 10_000, "restarted B connected to A");
  });

  it("refuses a damaged address book with a message naming the file and starts without it", { timeout: 30_000 }, async () => {
    const mesh = await startNodes(1);
    cleanups.push(mesh.stop);
    const home = mesh.homes[0]!;
    await mesh.nodes[0]!.stop();
    writeFileSync(join(home, "identity", "member-addresses.json"), JSON.stringify({ version: 1, peers: [{ peer: "x", seen: 1, addrs: ["/not/an/addr"] }] }));
    const errors: string[] = [];
    const again = await createNode({ dataDir: home, mdns: false, agents: createBuiltinRegistry([]), onError: (where, e) => errors.push(`${where}: ${e.message}`) });
    cleanups.push(() => again.stop());
    expect(errors.join("\n")).toMatch(/redial: .*member-addresses\.json: members' address book names a bad peer or address/);
  });
});
