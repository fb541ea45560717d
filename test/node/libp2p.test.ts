import { generateKeyPair } from "@libp2p/crypto/keys";
import { multiaddr } from "@multiformats/multiaddr";
import { afterEach, describe, expect, it } from "vitest";
import { createMeshLibp2p, MESH_DHT_PROTOCOL, type MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { openStream } from "../../protocols/framing/dial.js";
import { connect, eventually, startNodes, stopAll } from "./helpers.js";

let nodes: MeshLibp2p[] = [];
afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

describe("mesh libp2p assembly", () => {
  it("connects nodes on loopback and speaks only the private DHT protocol", async () => {
    nodes = await startNodes(3);
    const [a, b, c] = nodes as [MeshLibp2p, MeshLibp2p, MeshLibp2p];
    await connect(a, b);
    await connect(b, c);
    expect(a.getPeers().map(String)).toEqual([b.peerId.toString()]);
    expect(b.getPeers().length).toBe(2);
    expect(a.getProtocols()).toContain(MESH_DHT_PROTOCOL);
    expect(a.getProtocols().some((p) => p.startsWith("/ipfs/kad"))).toBe(false);
    expect(a.services.dht.getMode()).toBe("server");
    const rtt = await a.services.ping.ping(b.peerId);
    expect(rtt).toBeGreaterThanOrEqual(0);
  });

  it("refuses peers the admit callback rejects, inbound and outbound, once their key is known", async () => {
    const asked: string[] = [];
    let allowed = new Set<string>();
    nodes = await startNodes(3, {
      admit: (i) => async (peer) => {
        if (i === 1) asked.push(peer);
        return i !== 1 || allowed.has(peer);
      },
    });
    const [a, b, c] = nodes as [MeshLibp2p, MeshLibp2p, MeshLibp2p];
    allowed = new Set([a.peerId.toString()]);
    await connect(a, b);
    // The dialer may finish its side of the handshake before b's gater drops the connection.
    await connect(c, b).catch(() => undefined);
    await expect(connect(b, c)).rejects.toThrow();
    await eventually(() => c.getConnections(b.peerId).length === 0, 5_000, "refused connection dropped");
    expect(b.getPeers().map(String)).toEqual([a.peerId.toString()]);
    expect(asked).toContain(c.peerId.toString());
    expect(asked).toContain(a.peerId.toString());
  });

  it("dials bootstrap peers at start", async () => {
    nodes = await startNodes(1);
    const [seed] = nodes as [MeshLibp2p];
    const address = seed.getMultiaddrs()[0]?.toString();
    expect(address).toContain("/p2p/");
    const joiner = await createMeshLibp2p({
      privateKey: await generateKeyPair("Ed25519"),
      mdns: false,
      admit: () => true,
      bootstrap: [address as string],
    });
    nodes.push(joiner);
    await eventually(() => joiner.getPeers().some((p) => p.equals(seed.peerId)), 5_000, "bootstrap connection");
  });
});

describe("dials that cannot lead anywhere", () => {
  it("a node that lacks a relay slot looks for relays among the peers it meets, not by walking the DHT without pause", async () => {
    // libp2p's relay discovery queried the DHT for random keys in a loop for as long as no relay was found.
    const walker = await createMeshLibp2p({ privateKey: await generateKeyPair("Ed25519"), mdns: false, admit: () => true, reserveRelay: true, inboundConnectionThreshold: 1000 });
    nodes = [walker, ...(await startNodes(2))];
    const routing = walker.peerRouting;
    const getClosestPeers = routing.getClosestPeers.bind(routing);
    let queries = 0;
    routing.getClosestPeers = (...args) => {
      queries++;
      return getClosestPeers(...args);
    };
    await connect(walker, nodes[1]!);
    await connect(walker, nodes[2]!);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(queries).toBe(0);
    expect(walker.getMultiaddrs().some((a) => a.toString().includes("/p2p-circuit"))).toBe(false);
  });

  it("refuses to dial its own listen port on loopback or a relayed address through itself", async () => {
    nodes = await startNodes(2);
    const [a, b] = nodes as [MeshLibp2p, MeshLibp2p];
    const own = a.getMultiaddrs()[0]!.decapsulate("/p2p");
    await expect(a.dial(own.encapsulate(`/p2p/${b.peerId.toString()}`), { signal: AbortSignal.timeout(5_000) })).rejects.toThrow(/denied/);
    await expect(a.dial(a.getMultiaddrs()[0]!.encapsulate(`/p2p-circuit/p2p/${b.peerId.toString()}`), { signal: AbortSignal.timeout(5_000) })).rejects.toThrow(/denied/);
    // b's own address is dialled as before.
    await a.dial(multiaddr(b.getMultiaddrs()[0]!.toString()), { signal: AbortSignal.timeout(5_000) });
    expect(a.getConnections(b.peerId)).toHaveLength(1);
  });
});

describe("opening protocol streams", () => {
  it("replaces a connection that is listed open but whose muxer gave up", async () => {
    nodes = await startNodes(2);
    const [a, b] = nodes as [MeshLibp2p, MeshLibp2p];
    await b.handle("/test/echo/1.0.0", (stream) => void stream.close());
    await connect(a, b);
    const [zombie] = a.getConnections(b.peerId);
    // What yamux does to a connection that receives too many streams before it is set up: the muxer is
    // aborted, the TCP connection stays up and listed as open.
    (zombie as unknown as { muxer: { abort(error: Error): void } }).muxer.abort(new Error("too many early streams"));
    expect(zombie!.status).toBe("open");
    await expect(a.dialProtocol(b.peerId, "/test/echo/1.0.0")).rejects.toThrow(/muxer/);

    const stream = await openStream(a, b.peerId, "/test/echo/1.0.0", { timeoutMs: 5_000 });
    expect(stream.protocol).toBe("/test/echo/1.0.0");
    expect(a.getConnections(b.peerId)).not.toContain(zombie);
  });
});
