import { noise } from "@chainsafe/libp2p-noise";
import { circuitRelayServer, type CircuitRelayService } from "@libp2p/circuit-relay-v2";
import { yamux } from "@chainsafe/libp2p-yamux";
import { identify, identifyPush, type Identify, type IdentifyPush } from "@libp2p/identify";
import { KEEP_ALIVE, type Libp2p, type PeerId, type PrivateKey, type Startable } from "@libp2p/interface";
import { kadDHT, removePublicAddressesMapper, type KadDHT, type SelectFn, type ValidateFn } from "@libp2p/kad-dht";
import { mdns } from "@libp2p/mdns";
import { peerIdFromString } from "@libp2p/peer-id";
import { ping, type Ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { uPnPNAT } from "@libp2p/upnp-nat";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { selectNodeRecord, validateNodeRecord } from "../../protocols/capability/node-record.js";
import { AddressReach } from "./address-reach.js";
import { startHolePunching } from "./hole-punch.js";
import { memberRelayTransport } from "./member-relay-transport.js";
import { keepOneConnection } from "./one-connection.js";
import { PortMappingStatus, routerPortMappingClient } from "./router-port-mapping.js";
import { SocketAdoption } from "./punched-tcp.js";
import { leadsToSelf } from "./self-address.js";

/** The private Kademlia protocol: a CoderClaw mesh never joins the public DHT. */
export const MESH_DHT_PROTOCOL = "/coderclaw/kad/1.0.0";

/** Services every mesh node carries. */
export type MeshServices = {
  dht: KadDHT;
  ping: Ping;
  identify: Identify;
  identifyPush: IdentifyPush;
  /** Present on a node started as a relay for members. */
  relay?: CircuitRelayService;
};

/** A started-or-startable libp2p node with the mesh services. */
export type MeshLibp2p = Libp2p<MeshServices>;

/** Decides whether a remote peer may hold a connection to this node; false refuses it. */
export type AdmitPeer = (peerId: string) => boolean | Promise<boolean>;

/** Options of {@link createMeshLibp2p}. */
export interface MeshLibp2pOptions {
  /** The device key; its PeerId is the node's identity. */
  privateKey: PrivateKey;
  /** Listen multiaddrs. Default `/ip4/127.0.0.1/tcp/0`. */
  listen?: string[];
  /** Multiaddrs (with `/p2p/<id>`) dialed at start and kept connected. */
  bootstrap?: string[];
  /** LAN discovery by mDNS. Default true. */
  mdns?: boolean;
  /**
   * Membership decision, asked once the remote's key is proven by the Noise
   * handshake and before any protocol runs. Pairing exceptions are this callback's to make.
   */
  admit: AdmitPeer;
  /** Validator and selector of `/coderclaw/...` DHT records. Default: signed node records. */
  records?: { validate: ValidateFn; select: SelectFn };
  /** Members proper (not strangers a pairing door lets in): the only peers a relay serves. Default: {@link admit}. */
  isMember?: (peerId: string) => boolean;
  /**
   * Serve circuit relay v2 to members, for members behind NATs. `"auto"`: only
   * while members can reach this node (see {@link setRelayServing}). Default false.
   */
  relay?: boolean | "auto";
  /** A relay carries strangers' connections to a member while this says its door is open (it is inviting). Default never. */
  relayDoorOpen?: (member: string) => boolean;
  /**
   * Listen through relay members too (reserve a slot on one and advertise its
   * `/p2p-circuit` address), so members that cannot dial this node directly
   * reach it. Default: true unless every listen address is loopback.
   */
  reserveRelay?: boolean;
  /** Replace members' relayed connections by direct ones where their NATs allow (TCP hole punching). Default true. */
  holePunch?: boolean;
  /**
   * Ask the router for a port mapping (UPnP IGD or NAT-PMP) of each TCP listen port and
   * advertise the router's public address with the mapped port. Default false.
   */
  upnp?: boolean;
  /** With {@link upnp}: where searches for the router and each mapping's outcome are recorded (for `doctor` and `status`). */
  portMappingStatus?: PortMappingStatus;
  /** Inbound connections per second accepted from one host. Default 5 (libp2p's); raise for many local nodes. */
  inboundConnectionThreshold?: number;
}

/**
 * Assembles and starts libp2p for the mesh: TCP, Noise, Yamux, identify, ping,
 * a private kad-dht in server mode with LAN addresses only, optional mDNS, and
 * a gater that refuses non-admitted peers as soon as their key is known.
 * Discovered peers that are admitted get dialed; bootstrap peers are dialed
 * before it returns.
 */
export async function createMeshLibp2p(options: MeshLibp2pOptions): Promise<MeshLibp2p> {
  const { admit } = options;
  const refuse = async (peerId: PeerId): Promise<boolean> => !(await admit(peerId.toString()));
  const isMember = options.isMember ?? admit;
  const notMember = async (peerId: PeerId): Promise<boolean> => !(await isMember(peerId.toString()));
  const listen = options.listen ?? ["/ip4/127.0.0.1/tcp/0"];
  const reserveRelay = options.reserveRelay ?? !listen.every(isLoopback);
  const adoption = new SocketAdoption();
  const reach = new AddressReach();
  // Set once libp2p exists; no member is dialled before.
  let self: MeshLibp2p | undefined;
  const node = await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: reserveRelay ? [...listen, "/p2p-circuit"] : listen },
    // The adopting transport first: it claims only addresses a punched socket waits for.
    transports: [adoption.transport(), reach.observe(tcp()), memberRelayTransport()],
    connectionEncrypters: [noise()],
    // A member opens a dozen streams (identify, DHT, ping, sync, caps) the moment its side of a connection is up;
    // on a busy machine they arrive before ours is, and yamux's default of 10 such streams resets the connection.
    streamMuxers: [yamux({ maxEarlyStreams: 256 })],
    peerDiscovery: options.mdns === false ? [] : [mdns()],
    connectionGater: {
      denyDialPeer: refuse,
      denyDialMultiaddr: (address) => self !== undefined && leadsToSelf(address, { peerId: self.peerId.toString(), multiaddrs: () => self?.getMultiaddrs() ?? [] }),
      denyInboundEncryptedConnection: refuse,
      denyOutboundEncryptedConnection: refuse,
      // A relay carries members' traffic only: a stranger let in to pair may neither hold a slot nor be joined to anyone.
      denyInboundRelayReservation: notMember,
      // ... and a stranger to a member that is inviting through this relay (see relay-doors.ts).
      denyOutboundRelayedConnection: async (source, destination) => (await notMember(destination)) || ((await notMember(source)) && options.relayDoorOpen?.(destination.toString()) !== true),
    },
    connectionManager: {
      addressSorter: reach.sorter,
      inboundConnectionThreshold: options.inboundConnectionThreshold ?? 5,
    },
    services: {
      identify: identify(),
      // Members learn at once when this node's addresses change (another network) or it starts or stops relaying.
      identifyPush: identifyPush(),
      // libp2p's connection monitor pings each connection too: with the library's one outbound ping stream per
      // connection, `coderclaw peers` or `ping` at the moment of a heartbeat would be refused.
      ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 8 }),
      dht: kadDHT({
        protocol: MESH_DHT_PROTOCOL,
        clientMode: false,
        peerInfoMapper: removePublicAddressesMapper,
        validators: { coderclaw: options.records?.validate ?? validateNodeRecord },
        selectors: { coderclaw: options.records?.select ?? selectNodeRecord },
      }),
      ...(options.relay !== undefined && options.relay !== false && { relay: memberRelay() }),
      ...(options.upnp === true && { upnp: routerPortMapping(options.portMappingStatus ?? new PortMappingStatus()) }),
    },
  });
  self = node;
  keepOneConnection(node, { onError: (err) => node.logger.forComponent("coderclaw:connections").trace("closing a second connection failed: %e", err) });
  // libp2p 3 does not dial what discovery (mDNS, DHT walks) finds; members should end up connected.
  node.addEventListener("peer:discovery", (event) => {
    const peer = event.detail.id;
    if (node.getConnections(peer).length > 0) return;
    void (async () => {
      if (!(await admit(peer.toString()))) return;
      await node.dial(peer, { signal: AbortSignal.timeout(10_000) });
    })().catch((err: unknown) => node.logger.forComponent("coderclaw:discovery").trace("dial to discovered %p failed: %e", peer, err));
  });
  if (options.relay === "auto") await setRelayServing(node, false);
  if (options.holePunch !== false) await startHolePunching({ libp2p: node, adoption, isMember });
  await dialBootstrap(node, options.bootstrap ?? []);
  return node;
}

/**
 * Start or stop serving relay (a node created with `relay: "auto"` starts
 * stopped). Stopping unregisters the hop protocol, so members' identify shows
 * it gone; starting registers it again, which identify pushes to connected
 * members, whose relay transport then asks for a slot. libp2p types the relay
 * service without its start and stop, which it has.
 */
export async function setRelayServing(node: MeshLibp2p, serve: boolean): Promise<void> {
  const relay: unknown = node.services.relay;
  if (!isStartable(relay) || relay.isStarted?.() === serve) return;
  await (serve ? relay.start() : relay.stop());
}

function isStartable(service: unknown): service is Startable & { isStarted?: () => boolean } {
  const s = service as Partial<Startable> | undefined;
  return typeof s?.start === "function" && typeof s.stop === "function";
}

/** Relay slots one relay holds; each is a member behind a NAT, so a mesh of people's machines stays far below. */
const RELAY_MAX_RESERVATIONS = 256;

/**
 * Circuit relay v2 for members. The library's default caps each relayed
 * connection at 2 minutes and 128 KiB, which suits a public relay serving
 * strangers a handshake before they punch through; here both ends are proven
 * members (the gater refuses anyone else a slot or a hop), and a relayed
 * connection between them may carry a task that runs for hours and streams
 * megabytes of output, where cutting it off would fail the task. So members'
 * relayed connections carry no per-connection cap: such a cap would also mark
 * the connection "limited", on which libp2p runs no protocol that has not
 * opted in, i.e. none of the mesh's. Hole punching replaces a relayed path by
 * a direct one where the NATs allow it.
 */
function memberRelay(): ReturnType<typeof circuitRelayServer> {
  return circuitRelayServer({ reservations: { maxReservations: RELAY_MAX_RESERVATIONS, applyDefaultLimit: false } });
}

/**
 * Port mapping by the home router (UPnP IGD, else NAT-PMP). The mapped address is confirmed at once:
 * the router has made the forward, and AutoNAT would only confirm it once
 * several peers had dialled it, which a mesh of a few machines may never have.
 * The library refuses a private address from the router (a double NAT), where
 * a mapping could not be reached from outside anyway.
 */
function routerPortMapping(status: PortMappingStatus): ReturnType<typeof uPnPNAT> {
  return uPnPNAT({ autoConfirmAddress: true, portMappingClient: routerPortMappingClient({ description: "coderclaw", status }) });
}

function isLoopback(address: string): boolean {
  return /^\/(ip4\/127\.|ip6\/::1\/|dns[46]?\/localhost\/)/.test(address);
}

/**
 * Tags bootstrap peers keep-alive, so libp2p redials them when they drop, and
 * dials them once now. A peer that is down is not an error: the mesh works
 * without it and the reconnect queue keeps trying.
 */
async function dialBootstrap(node: MeshLibp2p, addresses: string[]): Promise<void> {
  await Promise.all(
    addresses.map(async (address) => {
      const ma = multiaddr(address);
      const peer = ma.getComponents().find((c) => c.name === "p2p")?.value;
      if (peer !== undefined) {
        await node.peerStore.merge(peerIdFromString(peer), { multiaddrs: [ma], tags: { [KEEP_ALIVE]: { value: 1 } } });
      }
      try {
        await node.dial(ma, { signal: AbortSignal.timeout(10_000) });
      } catch (err) {
        node.logger.forComponent("coderclaw:bootstrap").error("bootstrap dial to %s failed: %e", address, err);
      }
    }),
  );
}
