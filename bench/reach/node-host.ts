// A mesh node from the built package, for tests and the reach benchmark that run it inside a network namespace
// (`ip netns exec NS node dist/bench/reach/node-host.js '<NodeOptions as JSON>'`). It prints one JSON
// line `{"ready":{peerId,addrs}}`, then answers JSON commands on stdin, one a line
// (`{"id":1,"cmd":"invite"}`), with `{"id":1,"ok":...}` or `{"id":1,"error":"..."}`.
import "../../src/polyfills.js";
import { createInterface } from "node:readline";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { identify } from "@libp2p/identify";
import type { Libp2p } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { tcp } from "@libp2p/tcp";
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/create-node.js";
import { dialAddress } from "./dial-address.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createShellAgent } from "../../src/agents/shell.js";

type Args = Record<string, unknown>;
const options = JSON.parse(process.argv[2] ?? "{}") as NodeOptions & { stranger?: boolean; listen?: string[] };

/** What the commands need of a host: a mesh node, or a bare stranger with the few members a test uses. */
type Hosted = Pick<CoderClawNode, "peerId" | "multiaddrs" | "dial" | "stop"> & { libp2p: Libp2p; node?: CoderClawNode };

async function meshNode(nodeOptions: NodeOptions): Promise<Hosted> {
  const node = await createNode({
    mdns: false,
    // A relayed task in these tests prints a mebibyte; the agent's default cap is exactly that.
    agents: createBuiltinRegistry([createShellAgent({ outputLimitBytes: 8 * 1024 * 1024 })]),
    inboundConnectionThreshold: 100,
    ...nodeOptions,
    onError: (where, err) => void process.stderr.write(`[${where}] ${err.message}\n`),
  });
  return { peerId: node.peerId, multiaddrs: node.multiaddrs, dial: async (addr) => void (await dialAddress(node.libp2p, addr, AbortSignal.timeout(10_000))), stop: node.stop, libp2p: node.libp2p, node };
}

/**
 * Not a mesh node: plain libp2p with no gater of its own, as a modified client
 * would be, that asks every relay it meets for a slot (it listens on /p2p-circuit).
 */
async function stranger(listen: string[]): Promise<Hosted> {
  const libp2p = await createLibp2p({
    addresses: { listen: [...listen, "/p2p-circuit"] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  });
  return {
    peerId: libp2p.peerId.toString(),
    libp2p,
    multiaddrs: () => libp2p.getMultiaddrs().map(String),
    dial: async (addr: string) => void (await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })),
    stop: async () => void (await libp2p.stop()),
  };
}

const host = options.stranger === true ? await stranger(options.listen ?? []) : await meshNode(options);
const dials = countTransportDials(host.libp2p);
const mesh = (): CoderClawNode => {
  if (host.node === undefined) throw new Error("not a mesh node");
  return host.node;
};
/**
 * Every dial a transport is asked to make (TCP, relayed), by address, counted
 * below the dial queue: what a node really tries, retries included, which the
 * public dial call does not see.
 */
function countTransportDials(libp2p: Libp2p): Map<string, number> {
  const counts = new Map<string, number>();
  const { transportManager } = (libp2p as unknown as { components: { transportManager: { dial: (ma: Multiaddr, ...rest: unknown[]) => Promise<unknown> } } }).components;
  const dial = transportManager.dial.bind(transportManager);
  transportManager.dial = (ma, ...rest) => {
    counts.set(ma.toString(), (counts.get(ma.toString()) ?? 0) + 1);
    return dial(ma, ...rest);
  };
  return counts;
}

const send = (value: unknown): void => void process.stdout.write(JSON.stringify(value) + "\n");

const commands: Record<string, (args: Args) => unknown> = {
  addrs: () => host.multiaddrs(),
  createMesh: ({ name }) => mesh().createMesh(String(name)),
  signPolicy: ({ text }) => mesh().security.signPolicy("repo", String(text)),
  invite: async ({ level }) => (await mesh().pairing.invite((level as "trusted" | "verified" | undefined) ?? "trusted", 120_000)).invite,
  join: async ({ invite }) => void (await mesh().pairing.join(String(invite))),
  isMember: ({ peer }) => mesh().membership.isMember(String(peer)),
  dial: ({ addr }) => host.dial(String(addr)),
  hangUp: ({ peer }) => host.libp2p.hangUp(peerIdFromString(String(peer))),
  connections: () =>
    host.libp2p.getConnections().map((c) => ({
      peer: c.remotePeer.toString(),
      addr: c.remoteAddr.toString(),
      direction: c.direction,
      limited: c.limits !== undefined,
    })),
  dials: () => Object.fromEntries(dials),
  reservations: () => [...(mesh().libp2p.services.relay?.reservations.keys() ?? [])].map(String),
  peers: () => mesh().peers(),
  doctor: () => mesh().doctor(),
  ping: ({ peer, count }) => mesh().ping(String(peer), count as number | undefined),
  /** Submit, follow to the end, and return the final state (output summarised: its length, head and tail). */
  run: async ({ input, route, agentId }) => {
    const adapter = mesh().adapter;
    const task = await adapter.submitTask({ description: "reach test", input: String(input), agentId: (agentId as string | undefined) ?? "shell" }, { route: route as string });
    for await (const _ of adapter.streamTaskUpdates(task.id));
    const state = await adapter.getTaskState(task.id);
    const output = typeof state?.output === "string" ? state.output : "";
    return { status: state?.status, error: state?.error, outputBytes: Buffer.byteLength(output), head: output.slice(0, 64), tail: output.slice(-64) };
  },
  stop: async () => {
    await host.stop();
    setImmediate(() => process.exit(0));
  },
};

send({ ready: { peerId: host.peerId, addrs: host.multiaddrs() } });
createInterface({ input: process.stdin }).on("line", (line) => {
  let request: { id?: number; cmd?: string; args?: Args };
  try {
    request = JSON.parse(line) as typeof request;
  } catch {
    send({ error: `not JSON: ${line.slice(0, 80)}` });
    return;
  }
  const command = commands[request.cmd ?? ""];
  if (command === undefined) return send({ id: request.id, error: `unknown command ${request.cmd}` });
  Promise.resolve()
    .then(() => command(request.args ?? {}))
    .then(
      (ok) => send({ id: request.id, ok: ok ?? null }),
      (err: unknown) => send({ id: request.id, error: err instanceof Error ? err.message : String(err) }),
    );
});
process.stdin.on("end", () => void host.stop().then(() => process.exit(0)));
