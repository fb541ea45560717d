import { spawn } from "node:child_process";
import { connect } from "node:net";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import type { Libp2p } from "@libp2p/interface";
import { tcp } from "@libp2p/tcp";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { afterEach, describe, expect, it } from "vitest";
import { dialAddress } from "../../bench/reach/dial-address.js";

/**
 * Dialling an address by name, with plain libp2p nodes on 127.0.0.1: another
 * dial to the same peer, stuck on an address that never answers (a NAT that
 * drops packets), must not hold
 * it up; and the node found there must be the one the address names.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(): Promise<Libp2p> {
  const n = await createLibp2p({ addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
  cleanups.push(() => n.stop());
  return n;
}

/**
 * A port whose SYNs go unanswered, as behind a NAT that drops them: a listener
 * that never accepts, its queue filled, so the kernel drops further SYNs.
 */
async function droppingPort(): Promise<number> {
  const child = spawn("python3", ["-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()"], { stdio: ["pipe", "pipe", "inherit"] });
  cleanups.push(() => child.kill());
  const port = await new Promise<number>((resolve) => child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))));
  // Fill the accept queue: with a backlog of 0 it holds one connection.
  for (let i = 0; i < 1; i++) {
    const s = connect(port, "127.0.0.1");
    cleanups.push(() => s.destroy());
    await new Promise((resolve) => s.once("connect", resolve));
  }
  return port;
}

describe("dialAddress", () => {
  it("dials the address it is given while another dial to that peer is stuck elsewhere", { timeout: 30_000 }, async () => {
    const [x, y] = [await node(), await node()];
    // Two such addresses: libp2p gives each 6 s, one after the other.
    const stuckAddrs = [await droppingPort(), await droppingPort()].map((port) => multiaddr(`/ip4/127.0.0.1/tcp/${port}/p2p/${y.peerId.toString()}`));
    const stuck = x.dial(stuckAddrs, { signal: AbortSignal.timeout(25_000) });
    let stuckSettled = false;
    void stuck.then(
      () => (stuckSettled = true),
      () => (stuckSettled = true),
    );
    // libp2p's own dial of this address would join the stuck one and wait for both (past the 10 s given here).
    const connection = await dialAddress(x, y.getMultiaddrs()[0]!.toString(), AbortSignal.timeout(10_000));
    expect(connection.remotePeer.equals(y.peerId)).toBe(true);
    expect(stuckSettled).toBe(false);
  });

  it("refuses a node other than the one the address names", async () => {
    const [x, y, z] = [await node(), await node(), await node()];
    const zAddr = z.getMultiaddrs()[0]!.toString().replace(z.peerId.toString(), y.peerId.toString());
    await expect(dialAddress(x, zAddr, AbortSignal.timeout(10_000))).rejects.toThrow(`the node there is ${z.peerId.toString()}, not ${y.peerId.toString()}`);
    await expect.poll(() => x.getConnections(z.peerId).length).toBe(0);
  });
});
