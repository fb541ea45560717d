import { connect, createServer, type Socket } from "node:net";
import type { Connection, Libp2p, PeerId, Stream } from "@libp2p/interface";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { createMessageCodec, FramedChannel } from "../../protocols/framing/index.js";
import type { SocketAdoption } from "./punched-tcp.js";
import { isRelayed, relayOf } from "../../protocols/framing/connection-choice.js";

/** Members exchange the outside address and port each will open a TCP connection from. */
export const PUNCH_PROTOCOL = "/coderclaw/punch/1.0.0";
/** Asks a peer which address it sees this node's connection come from (its NAT's outside address). */
export const OBSERVED_ADDR_PROTOCOL = "/coderclaw/observed-addr/1.0.0";

/** The punch protocol's one message: where a side will open its end from, as the other is to dial it. */
export const punchCandidateCodec = createMessageCodec({
  version: 1,
  // A member could name any address for this node to open a connection to: never this machine itself, nor a broadcast or multicast one.
  schema: z.strictObject({
    ip: z.ipv4().refine((ip) => !/^(0|127|22[4-9]|2[3-5]\d)\./.test(ip), "must be a unicast address of another machine"),
    port: z.number().int().min(1024).max(65_535),
  }),
  maxMessageBytes: 128,
});
const observedCodec = createMessageCodec({ version: 1, schema: z.strictObject({ ip: z.ipv4() }), maxMessageBytes: 128 });

/** A whole attempt (exchange and simultaneous open) gives up after this; SYNs are retransmitted at 1 s and 3 s within it. */
const ATTEMPT_MS = 6000;
/** How long streams on a replaced relayed connection may take to finish before it is cut. */
const RELAYED_CLOSE_GRACE_MS = 5000;
/** Attempts per relayed connection, each from a fresh port, as DCUtR makes. */
const ATTEMPTS = 3;

/** Options of {@link startHolePunching}. */
export interface HolePunchOptions {
  libp2p: Libp2p;
  adoption: SocketAdoption;
  /** Only members' relayed connections are upgraded; only members are told their address. */
  isMember: (peer: string) => boolean | Promise<boolean>;
}

/**
 * Replaces a relayed connection between members by a direct one where their
 * NATs allow: TCP simultaneous open. Node cannot open an outgoing connection
 * from the port it listens on, so each side instead picks a fresh local port
 * and tells the other (over the relayed connection) the outside address its
 * relay sees and that port; a NAT that keeps a flow's source port (most home
 * routers; "endpoint-independent") then lets the two SYNs cross. A NAT that
 * picks a new port per flow (symmetric) defeats the prediction: the connection
 * stays relayed. Of the two, the one with the smaller peer id starts and runs
 * the handshake as initiator (both may have dialled the relayed connection).
 * Once the direct connection is up the relayed one is closed, so traffic moves
 * to the direct path.
 */
export async function startHolePunching(options: HolePunchOptions): Promise<void> {
  const { libp2p, adoption, isMember } = options;
  const log = libp2p.logger.forComponent("coderclaw:hole-punch");
  const busy = new Set<string>();

  await libp2p.handle(OBSERVED_ADDR_PROTOCOL, async (stream: Stream, connection: Connection) => {
    const ip = isRelayed(connection) ? undefined : /^\/ip4\/([^/]+)\//.exec(connection.remoteAddr.toString())?.[1];
    if (ip === undefined || !(await isMember(connection.remotePeer.toString()))) return stream.abort(new Error("no IPv4 address to tell"));
    await new FramedChannel({ stream, codec: observedCodec, peer: connection.remotePeer.toString() }).send({ ip });
    await stream.close().catch(() => undefined);
  });

  await libp2p.handle(PUNCH_PROTOCOL, async (stream: Stream, connection: Connection) => {
    const peer = connection.remotePeer.toString();
    if (!isRelayed(connection) || busy.has(peer) || !(await isMember(peer))) return stream.abort(new Error("no punch wanted here"));
    busy.add(peer);
    try {
      const channel = new FramedChannel({ stream, codec: punchCandidateCodec, peer });
      const theirs = await channel.receive({ timeoutMs: ATTEMPT_MS });
      const ours = await ownCandidate(libp2p, connection);
      await channel.send(ours);
      await adopt(theirs, ours.port, peer, false);
    } catch (err) {
      log("punch answered for %s failed: %e", peer, err);
      stream.abort(err as Error);
    } finally {
      busy.delete(peer);
    }
  });

  const adopt = async (theirs: { ip: string; port: number }, localPort: number, peer: string, initiator: boolean): Promise<Connection> => {
    const socket = await simultaneousOpen(theirs.ip, theirs.port, localPort, ATTEMPT_MS);
    const remote = multiaddr(`/ip4/${theirs.ip}/tcp/${theirs.port}/p2p/${peer}`);
    try {
      return await adoption.adopt(socket, remote, initiator, AbortSignal.timeout(ATTEMPT_MS));
    } catch (err) {
      socket.destroy();
      throw err;
    }
  };

  // Each attempt takes whichever relayed connection to the peer is open then: the one that set it off may have closed meanwhile.
  const punch = async (peerId: PeerId): Promise<void> => {
    const peer = peerId.toString();
    if (busy.has(peer)) return;
    busy.add(peer);
    try {
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        const connections = libp2p.getConnections(peerId).filter((c) => c.status === "open");
        const relayed = connections.find(isRelayed);
        if (relayed === undefined || connections.some((c) => !isRelayed(c))) return;
        try {
          const ours = await ownCandidate(libp2p, relayed);
          const stream = await relayed.newStream(PUNCH_PROTOCOL, { signal: AbortSignal.timeout(ATTEMPT_MS) });
          const channel = new FramedChannel({ stream, codec: punchCandidateCodec, peer });
          await channel.send(ours);
          const theirs = await channel.receive({ timeoutMs: ATTEMPT_MS });
          const direct = await adopt(theirs, ours.port, peer, true);
          await stream.close().catch(() => undefined);
          log("direct connection to %s at %a replaces the relayed one", peer, direct.remoteAddr);
          // Streams still open on a relayed connection get a few seconds to finish; new ones go direct.
          for (const c of libp2p.getConnections(peerId).filter(isRelayed)) {
            await c.close({ signal: AbortSignal.timeout(RELAYED_CLOSE_GRACE_MS) }).catch((err: unknown) => c.abort(err as Error));
          }
          return;
        } catch (err) {
          log("punch to %s, attempt %d of %d, failed: %e", peer, attempt, ATTEMPTS, err);
        }
      }
    } finally {
      busy.delete(peer);
    }
  };

  libp2p.addEventListener("connection:open", (event) => {
    const connection = event.detail;
    // One side starts, whichever way the relayed connection was dialled (both may have dialled): the smaller peer id.
    if (!isRelayed(connection) || libp2p.peerId.toString() > connection.remotePeer.toString()) return;
    void (async () => {
      if (!(await isMember(connection.remotePeer.toString()))) return;
      await punch(connection.remotePeer);
    })().catch((err: unknown) => log.error("hole punching failed: %e", err));
  });
}

/** This node's outside address as the relay of `relayed` sees it, and a free local port to open the punched connection from. */
async function ownCandidate(libp2p: Libp2p, relayed: Connection): Promise<{ ip: string; port: number }> {
  const relay = relayOf(relayed.remoteAddr.toString());
  const toRelay = libp2p.getConnections().find((c) => c.remotePeer.toString() === relay && !isRelayed(c));
  if (toRelay === undefined) throw new Error(`no direct connection to the relay ${relay ?? "(unnamed)"}`);
  const stream = await toRelay.newStream(OBSERVED_ADDR_PROTOCOL, { signal: AbortSignal.timeout(ATTEMPT_MS) });
  const { ip } = await new FramedChannel({ stream, codec: observedCodec, peer: toRelay.remotePeer.toString() }).receive({ timeoutMs: ATTEMPT_MS });
  await stream.close().catch(() => undefined);
  return { ip, port: await freePort() };
}

/** A local TCP port nothing uses now (the kernel's pick for a listener, released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Connect to `host:port` from `localPort` while the other side does the same towards us: the SYNs cross in the NATs. */
function simultaneousOpen(host: string, port: number, localPort: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localPort });
    const timer = setTimeout(() => fail(new Error(`simultaneous open with ${host}:${port} from port ${localPort} timed out after ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", fail);
      resolve(socket);
    });
  });
}
