// A mesh node from the built package, for tests that run it inside a network namespace
// (`ip netns exec NS node test/reach/node-host.mjs '<NodeOptions as JSON>'`). It prints one JSON
// line `{"ready":{peerId,addrs}}`, then answers JSON commands on stdin, one a line
// (`{"id":1,"cmd":"invite"}`), with `{"id":1,"ok":...}` or `{"id":1,"error":"..."}`.
import "../../dist/src/polyfills.js";
import { createInterface } from "node:readline";
import { createNode } from "../../dist/node/create-node.js";
import { createBuiltinRegistry } from "../../dist/src/agents/builtin.js";
import { createShellAgent } from "../../dist/src/agents/shell.js";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { identify } from "@libp2p/identify";
import { tcp } from "@libp2p/tcp";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { peerIdFromString } from "@libp2p/peer-id";

const options = JSON.parse(process.argv[2] ?? "{}");
const node = options.stranger === true ? await stranger(options.listen) : await meshNode(options);

function meshNode(options) {
  return createNode({
    mdns: false,
    // A relayed task in these tests prints a mebibyte; the agent's default cap is exactly that.
    agents: createBuiltinRegistry([createShellAgent({ outputLimitBytes: 8 * 1024 * 1024 })]),
    inboundConnectionThreshold: 100,
    ...options,
    onError: (where, err) => process.stderr.write(`[${where}] ${err.message}\n`),
  });
}

/**
 * Not a mesh node: plain libp2p with no gater of its own, as a modified client
 * would be, that asks every relay it meets for a slot (it listens on /p2p-circuit).
 */
async function stranger(listen) {
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
    dial: async (addr) => void (await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })),
    stop: () => libp2p.stop(),
  };
}
const send = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const connections = () =>
  node.libp2p.getConnections().map((c) => ({
    peer: c.remotePeer.toString(),
    addr: c.remoteAddr.toString(),
    direction: c.direction,
    limited: c.limits !== undefined,
  }));

const commands = {
  addrs: () => node.multiaddrs(),
  createMesh: ({ name }) => node.createMesh(name),
  signPolicy: ({ text }) => node.security.signPolicy("repo", text),
  invite: async ({ level }) => (await node.pairing.invite(level ?? "trusted", 120_000)).invite,
  join: async ({ invite }) => void (await node.pairing.join(invite)),
  isMember: ({ peer }) => node.membership.isMember(peer),
  dial: ({ addr }) => node.dial(addr),
  hangUp: ({ peer }) => node.libp2p.hangUp(peerIdFromString(peer)),
  connections,
  reservations: () => [...(node.libp2p.services.relay?.reservations.keys() ?? [])].map(String),
  peers: () => node.peers(),
  doctor: () => node.doctor(),
  ping: ({ peer, count }) => node.ping(peer, count),
  /** Submit, follow to the end, and return the final state (output summarised: its length, head and tail). */
  run: async ({ input, route, agentId }) => {
    const task = await node.adapter.submitTask({ description: "reach test", input, agentId: agentId ?? "shell" }, { route });
    for await (const _ of node.adapter.streamTaskUpdates(task.id));
    const state = await node.adapter.getTaskState(task.id);
    const output = state?.output ?? "";
    return { status: state?.status, error: state?.error, outputBytes: Buffer.byteLength(output), head: output.slice(0, 64), tail: output.slice(-64) };
  },
  stop: async () => {
    await node.stop();
    setImmediate(() => process.exit(0));
  },
};

send({ ready: { peerId: node.peerId, addrs: node.multiaddrs() } });
createInterface({ input: process.stdin }).on("line", (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    send({ error: `not JSON: ${line.slice(0, 80)}` });
    return;
  }
  const command = commands[request.cmd];
  if (command === undefined) return send({ id: request.id, error: `unknown command ${request.cmd}` });
  Promise.resolve()
    .then(() => command(request.args ?? {}))
    .then(
      (ok) => send({ id: request.id, ok: ok ?? null }),
      (err) => send({ id: request.id, error: err instanceof Error ? err.message : String(err) }),
    );
});
process.stdin.on("end", () => void node.stop().then(() => process.exit(0)));
