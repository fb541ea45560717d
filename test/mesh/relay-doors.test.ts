import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { identify } from "@libp2p/identify";
import type { Connection, Libp2p } from "@libp2p/interface";
import { tcp } from "@libp2p/tcp";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { RELAY_DOOR_PROTOCOL } from "../../node/mesh/relay-doors.js";
import { encodeCanonical, encodeFrame } from "../../protocols/framing/index.js";
import { isRelayed } from "../../protocols/framing/connection-choice.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

/**
 * Who may open a door on a relay (see node/mesh/relay-doors.ts), with real
 * nodes on 127.0.0.1: R relays for members, M and N are members listening
 * through R, S is a stranger. A door lets strangers reach one inviting member
 * through R; everything else about it must stay shut to whoever else asks.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function nodes(count: number, options: (i: number) => Parameters<typeof startNodes>[1] extends ((i: number) => infer E) | undefined ? E : never = () => ({})): Promise<CoderClawNode[]> {
  const started = await startNodes(count, options);
  cleanups.push(started.stop);
  return started.nodes;
}

/** R (relay, founder), then members listening through R; every pair connected directly. */
async function relayAndMembers(members: number): Promise<{ r: CoderClawNode; m: CoderClawNode[] }> {
  const [r, ...m] = await nodes(1 + members, (i) => ({ options: i === 0 ? { relay: true, holePunch: false } : { reserveRelay: true, holePunch: false } }));
  await formMesh([r!, ...m]);
  for (const x of m) await eventually(() => x.libp2p.getMultiaddrs().some((a) => a.toString().includes(`/p2p/${r!.peerId}/p2p-circuit`)), 15_000, "a member's slot on R");
  return { r: r!, m };
}

/** Not a mesh node: bare libp2p with no gater of its own, as a modified client would be. */
async function stranger(): Promise<{ libp2p: Libp2p; peerId: string; dial: (addr: string) => Promise<Connection> }> {
  const libp2p = await createLibp2p({
    addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  });
  cleanups.push(() => libp2p.stop());
  return { libp2p, peerId: libp2p.peerId.toString(), dial: (addr) => libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) }) };
}

/**
 * Whether `addr`'s node lets the stranger in: the dialler's side of a refused
 * connection may come up before the other side refuses it, so this opens a
 * stream over it (identify, which every node answers).
 */
async function letIn(s: Awaited<ReturnType<typeof stranger>>, addr: string): Promise<boolean> {
  try {
    const connection = await s.dial(addr);
    const stream = await connection.newStream("/ipfs/id/1.0.0", { signal: AbortSignal.timeout(5000) });
    await stream.close();
    return true;
  } catch {
    return false;
  }
}

/** R's address on loopback, for a stranger to dial. */
const directAddr = (r: CoderClawNode): string => r.multiaddrs().find((a) => !a.includes("/p2p-circuit"))!;

/** A door message as any sender may put it on the wire, on `connection`; a refused sender's stream is reset, which is no error here. */
async function sendDoor(connection: Connection, body: Record<string, unknown>): Promise<void> {
  try {
    const stream = await connection.newStream(RELAY_DOOR_PROTOCOL, { signal: AbortSignal.timeout(5000) });
    stream.send(encodeFrame(encodeCanonical([1, body]), 1024));
    await stream.close();
  } catch {
    // What the relay did is read from its audit log.
  }
}

async function doorEntries(r: CoderClawNode, peer: string, result: "allowed" | "denied"): Promise<Array<{ reason?: string }>> {
  return (await r.security.current.getAuditLog({ action: "relay.door", result }))
    .filter((e) => e.body.userId === peer)
    .map((e) => ({ ...(e.body.reason !== undefined && { reason: e.body.reason }) }));
}

const directTo = (from: { libp2p: Libp2p }, to: CoderClawNode): Connection => from.libp2p.getConnections(to.libp2p.peerId).find((c) => !isRelayed(c) && c.status === "open")!;

/**
 * Sends `body` from member `from` to R over its direct connection until R's
 * audit log holds a `result` entry for it. Right after a mesh forms, a pair may
 * hold two connections and keep one: the direct one can be retired just as the
 * message goes (the send swallows that), and a node would send again.
 */
async function doorUntilAudited(from: CoderClawNode, r: CoderClawNode, body: Record<string, unknown>, result: "allowed" | "denied"): Promise<void> {
  for (let tries = 0; tries < 8 && (await doorEntries(r, from.peerId, result)).length === 0; tries++) {
    const direct = directTo(from, r) ?? (await from.libp2p.dial(multiaddr(directAddr(r)), { signal: AbortSignal.timeout(5000) }));
    await sendDoor(direct, body);
    await eventually(async () => (await doorEntries(r, from.peerId, result)).length > 0, 1_500, `M's door message ${result}`).catch(() => undefined);
  }
  expect((await doorEntries(r, from.peerId, result)).length, `M's door message ${result} and audited`).toBeGreaterThan(0);
}

describe("relay doors: who may open one", () => {
  it("a stranger let in by a member's door opens none itself: refused and audited", { timeout: 60_000 }, async () => {
    const { r, m } = await relayAndMembers(1);
    const s = await stranger();
    // Before any door, R lets no stranger in.
    expect(await letIn(s, directAddr(r))).toBe(false);
    await m[0]!.pairing.invite("verified", 60_000);
    await eventually(async () => (await doorEntries(r, m[0]!.peerId, "allowed")).length === 1, 10_000, "M's door open on R");
    expect(await letIn(s, directAddr(r))).toBe(true);

    await sendDoor(directTo(s, r), { untilMs: Date.now() + 60_000 });
    await eventually(async () => (await doorEntries(r, s.peerId, "denied")).length === 1, 10_000, "S's door message refused and audited");
    expect(await doorEntries(r, s.peerId, "denied")).toEqual([{ reason: "not a member" }]);
    expect(await doorEntries(r, s.peerId, "allowed")).toEqual([]);
  });

  it("a member's door message over a relayed connection is refused, over its direct one taken", { timeout: 60_000 }, async () => {
    // Q relays too; R listens through Q, so M can reach R through Q as well as directly.
    const [r, q, m] = await nodes(3, (i) => ({ options: [{ relay: true, reserveRelay: true, holePunch: false }, { relay: true, holePunch: false }, { holePunch: false }][i]! }));
    await formMesh([r!, q!, m!]);
    await eventually(() => r!.libp2p.getMultiaddrs().some((a) => a.toString().includes(`/p2p/${q!.peerId}/p2p-circuit`)), 15_000, "R's slot on Q");
    // A hop asked while R's reservation on Q is renewed can be refused (MALFORMED_MESSAGE from Q's side); M asks again, as a node would.
    let viaQ: Connection | undefined;
    for (let tries = 0; viaQ === undefined; tries++) {
      viaQ = await m!.libp2p.dial(multiaddr(`${directAddr(q!)}/p2p-circuit/p2p/${r!.peerId}`), { force: true, signal: AbortSignal.timeout(5000) }).catch((err: unknown) => {
        if (tries >= 4) throw err;
        return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 300));
      });
    }
    expect(isRelayed(viaQ)).toBe(true);
    expect(directTo(m!, r!)).toBeDefined();

    await sendDoor(viaQ, { untilMs: Date.now() + 60_000 });
    await eventually(async () => (await doorEntries(r!, m!.peerId, "denied")).length === 1, 10_000, "M's relayed door message refused and audited");
    expect((await doorEntries(r!, m!.peerId, "denied"))[0]!.reason).toContain(`through ${q!.peerId}`);
    expect(await doorEntries(r!, m!.peerId, "allowed")).toEqual([]);

    // M now holds two connections to R, and the pair keeps one.
    await doorUntilAudited(m!, r!, { untilMs: Date.now() + 60_000 }, "allowed");
    expect(await doorEntries(r!, m!.peerId, "denied"), "only the relayed one refused").toHaveLength(1);
  });

  it("a member opens its own door only: a stranger reaches the inviting member through R, not another", { timeout: 60_000 }, async () => {
    const { r, m } = await relayAndMembers(2);
    const [inviting, other] = m as [CoderClawNode, CoderClawNode];
    // Naming another member in the message is no way to open its door: the message has no such field.
    await doorUntilAudited(inviting, r, { untilMs: Date.now() + 60_000, member: other.peerId }, "denied");
    expect(await doorEntries(r, inviting.peerId, "allowed")).toEqual([]);
    await inviting.pairing.invite("verified", 60_000);
    await eventually(async () => (await doorEntries(r, inviting.peerId, "allowed")).length === 1, 10_000, "M's door open on R");

    const s = await stranger();
    expect(await letIn(s, directAddr(r))).toBe(true);
    expect(await letIn(s, `${directAddr(r)}/p2p-circuit/p2p/${inviting.peerId}`)).toBe(true);
    // R refuses the hop itself (the other member's gater would refuse S too, with another error).
    await expect(s.dial(`${directAddr(r)}/p2p-circuit/p2p/${other.peerId}`)).rejects.toThrow(/PERMISSION_DENIED/);
  });

  it("a revoked member's door closes: strangers are no longer let in, nor carried to it", { timeout: 60_000 }, async () => {
    const { r, m } = await relayAndMembers(1);
    const member = m[0]!;
    await member.pairing.invite("verified", 60_000);
    await eventually(async () => (await doorEntries(r, member.peerId, "allowed")).length === 1, 10_000, "M's door open on R");
    const before = await stranger();
    expect(await letIn(before, directAddr(r))).toBe(true);

    await r.membership.revoke(member.peerId, "laptop stolen");
    await eventually(() => r.libp2p.getConnections(member.libp2p.peerId).length === 0, 10_000, "R cut M off");
    const after = await stranger();
    expect(await letIn(after, directAddr(r))).toBe(false);
    expect(await letIn(before, `${directAddr(r)}/p2p-circuit/p2p/${member.peerId}`)).toBe(false);
  });
});
