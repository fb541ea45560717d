import type { PeerId, PrivateKey } from "@libp2p/interface";
import { setMaxListeners } from "node:events";
import { askNodeRecord, CAPS_FIRST_REQUEST, capsRequestShape, RecordWatchers, serveNodeRecord, watchNodeRecord, type AskedRecord } from "../../protocols/capability/exchange.js";
import { CAPS_PROTOCOL, createCapsCodec, type CapsMessage } from "../../protocols/capability/messages.js";
import { signNodeRecord, type CapabilityKind, type NodeRecord, type SignedNodeRecord } from "../../protocols/capability/node-record.js";
import { ChannelClosedError } from "../../protocols/framing/errors.js";
import { createPeerRateLimiter, type PeerRateLimiter } from "../../src/util/rate-limiter.js";
import { handleFramed } from "../../protocols/framing/pool.js";
import { RequestPool } from "../../protocols/framing/request-pool.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";
import { dhtRecords } from "./dht-records.js";
import { untilAborted } from "../../src/util/until-aborted.js";

/** What this node offers now; read whenever a record is signed or served. */
export interface LocalCapabilities {
  agents: string[];
  skills: string[];
  capabilities: string[];
  load: number;
  maxConcurrency: number;
  labels?: string[];
  resources?: Record<string, number>;
  /** Published agents this node does not run, with why. */
  unavailable?: Record<string, string>;
}

/** A node that can run what was asked for. */
export interface Candidate {
  peerId: string;
  record: NodeRecord;
  /** This node itself. */
  local: boolean;
  /** Round trip to the peer in ms: 0 for the local node, undefined when it could not be measured. */
  latencyMs: number | undefined;
  /** How the candidate was found: itself, asking a connected member, or a DHT provider record. */
  source: "local" | "direct" | "dht";
}

/** How {@link CapabilityDirectory.find} looks: connected members, the DHT, or auto (members first when few). */
export type LookupStrategy = "auto" | "direct" | "dht";

/** Options of a lookup. */
export interface FindOptions {
  /** Default "auto". */
  strategy?: LookupStrategy;
  /** Whole lookup budget. Default 5 s. */
  timeoutMs?: number;
  /** Leave out the local node. */
  excludeLocal?: boolean;
}

/** Options of {@link createCapabilityDirectory}. */
export interface CapabilityDirectoryOptions {
  libp2p: MeshLibp2p;
  /** The device key, which signs this node's record. */
  privateKey: PrivateKey;
  /** Current offer of this node. */
  local: () => LocalCapabilities;
  /** Software version published in the record. */
  version: string;
  /** Only members are asked or answered over the caps protocol. */
  isMember: (peerId: string) => boolean | Promise<boolean>;
  /** "auto" asks connected members directly while there are at most this many. Default 32. */
  directAskMax?: number;
  /** A changed record (its load, an agent that came or went) goes to the DHT at most this often. Default 60 s. */
  refreshMs?: number;
  /** An unchanged record goes to the DHT again this often, so that it outlives the peers that held it. Default 30 min. */
  republishMs?: number;
  /** A new record (its load changed, an agent came or went) goes to the members that watch it at most this often. Default 1 s. */
  pushMs?: number;
  /** After the first DHT provider is found, wait this long for more before ending the query. Default 50 ms. */
  providerGraceMs?: number;
  /** Budget of one DHT publication. Default 10 s. */
  publishTimeoutMs?: number;
  /** Per-peer frame allowance; pass the node's shared limiter. Default: 200 frames/s, bursts of 400. */
  limiter?: PeerRateLimiter;
  onError?: (error: Error) => void;
}

/** Publishes this node's capabilities and finds nodes offering an agent, skill or capability. */
export interface CapabilityDirectory {
  /** Sign a fresh record (new seq) and publish it and the provider records to the DHT. */
  publish(): Promise<void>;
  /** The record this node serves now, re-signed when its content changed. */
  localRecord(): Promise<SignedNodeRecord>;
  /** Nodes offering `id` of `kind`, each at most once, with load and latency. */
  find(kind: CapabilityKind, id: string, options?: FindOptions): Promise<Candidate[]>;
  /**
   * The signed records of every connected member, with latency: as watched
   * (pushed by each member when it changes), asked of those not heard from yet,
   * which answer within `timeoutMs` (default 2 s).
   */
  members(timeoutMs?: number): Promise<Candidate[]>;
  /** Shorthand for `find("agent", agentId)`. */
  findAgent(agentId: string, options?: FindOptions): Promise<Candidate[]>;
  /** Stop serving and refreshing. Idempotent. */
  stop(): Promise<void>;
}

function offers(record: NodeRecord, kind: CapabilityKind, id: string): boolean {
  const list = kind === "agent" ? record.agents : kind === "skill" ? record.skills : record.capabilities;
  return list.includes(id);
}

/**
 * Starts the capability directory: serves the caps protocol, publishes the node
 * record and provider records now and every `refreshMs`. Lookups ask connected
 * members directly on their long-lived caps stream while the mesh is small, and
 * the DHT (providers, then signed records) beyond that or when no member has it.
 */
export async function createCapabilityDirectory(options: CapabilityDirectoryOptions): Promise<CapabilityDirectory> {
  const { libp2p, privateKey, isMember } = options;
  const self = libp2p.peerId.toString();
  const codec = createCapsCodec();
  const report = (error: unknown): void => {
    if (!(error instanceof ChannelClosedError)) options.onError?.(error instanceof Error ? error : new Error(String(error)));
  };
  const settings = { limiter: options.limiter ?? createPeerRateLimiter({ framesPerSecond: 200, burst: 400 }) };
  const dht = dhtRecords({ libp2p, report, ...(options.providerGraceMs !== undefined && { providerGraceMs: options.providerGraceMs }) });
  let signed: { content: string; record: SignedNodeRecord } | undefined;
  let lastSeq = 0;
  let stopped = false;
  const stopping = new AbortController();
  // Every member's watch of its record listens to it: one per member, however many.
  setMaxListeners(Infinity, stopping.signal);

  const localRecord = async (): Promise<SignedNodeRecord> => {
    const caps = options.local();
    const content = JSON.stringify([caps.agents, caps.skills, caps.capabilities, caps.load, caps.maxConcurrency, caps.labels, caps.resources, caps.unavailable, options.version]);
    if (signed !== undefined && signed.content === content) return signed.record;
    const now = Date.now();
    // Time-based so a restarted node's record still beats the one it published before.
    lastSeq = Math.max(lastSeq + 1, now);
    const record = await signNodeRecord(
      { peerId: self, ...caps, version: options.version, seq: lastSeq, updatedAt: now },
      privateKey,
    );
    signed = { content, record };
    return record;
  };

  const watchers = new RecordWatchers();
  await handleFramed<CapsMessage>(libp2p, CAPS_PROTOCOL, {
    codec,
    settings,
    maxInboundStreams: 2,
    accept: async (peer) => !stopped && (await isMember(peer)),
    onError: (_peer, error) => report(error),
    onChannel: (channel) => void serveNodeRecord(channel, localRecord, watchers).catch(report),
  });
  // Load changes with every task: new records go out at a bounded rate, and only while someone watches.
  const pushing = setInterval(() => {
    if (watchers.size > 0) localRecord().then((record) => watchers.push(record), report);
  }, options.pushMs ?? 1000);
  pushing.unref();

  const pool = new RequestPool<CapsMessage>({
    libp2p,
    protocol: CAPS_PROTOCOL,
    codec,
    settings,
    openTimeoutMs: 5_000,
    shape: capsRequestShape,
    requests: { firstRid: CAPS_FIRST_REQUEST, onClose: (error) => error !== undefined && report(error) },
  });

  /** The peer's record, asked on its caps stream; the lookup's whole budget is the answer's deadline too. */
  const ask = async (peer: PeerId | string, signal: AbortSignal, timeoutMs: number): Promise<AskedRecord> =>
    askNodeRecord(await untilAborted(pool.get(peer), signal), { signal, timeoutMs });

  /** Members' records as they pushed them, while their watch lasts. */
  const watched = new Map<string, AskedRecord>();
  const watching = new Set<string>();
  const watch = (peer: PeerId): void => {
    const id = peer.toString();
    if (stopped || watching.has(id)) return;
    watching.add(id);
    void (async () => watchNodeRecord(await pool.get(peer), (asked) => watched.set(id, asked), stopping.signal))()
      .catch((error: unknown) => {
        if (!stopping.signal.aborted) report(error);
      })
      .finally(() => {
        watching.delete(id);
        watched.delete(id);
      });
  };
  /** Members' records as watched, and the members not heard from yet; every one is watched from now on. */
  const fromWatches = (peers: PeerId[]): { cached: Candidate[]; unheard: PeerId[] } => {
    const cached: Candidate[] = [];
    const unheard: PeerId[] = [];
    for (const peer of peers) {
      const asked = watched.get(peer.toString());
      if (asked === undefined) unheard.push(peer);
      else cached.push({ peerId: asked.record.peerId, record: asked.record, local: false, latencyMs: asked.latencyMs, source: "direct" });
      watch(peer);
    }
    return { cached, unheard };
  };

  const connectedMembers = async (): Promise<PeerId[]> => {
    const unique = new Map<string, PeerId>();
    for (const connection of libp2p.getConnections()) unique.set(connection.remotePeer.toString(), connection.remotePeer);
    const members = await Promise.all([...unique.values()].map(async (peer) => ((await isMember(peer.toString())) ? peer : undefined)));
    return members.filter((p): p is PeerId => p !== undefined);
  };

  const askAll = async (peers: PeerId[], kind: CapabilityKind, id: string, signal: AbortSignal, timeoutMs: number): Promise<Candidate[]> => {
    const answers = await Promise.allSettled(peers.map((peer) => ask(peer, signal, timeoutMs)));
    const out: Candidate[] = [];
    for (const answer of answers) {
      if (answer.status === "rejected") continue;
      const { record, latencyMs } = answer.value;
      if (offers(record, kind, id)) out.push({ peerId: record.peerId, record, local: false, latencyMs, source: "direct" });
    }
    return out;
  };

  /** A provider's record, asked directly on its caps stream (dialing it), else read from the DHT. */
  const resolveProvider = async (peer: string, kind: CapabilityKind, id: string, signal: AbortSignal, timeoutMs: number): Promise<Candidate | undefined> => {
    try {
      const { record, latencyMs } = await ask(peer, signal, timeoutMs);
      return offers(record, kind, id) ? { peerId: peer, record, local: false, latencyMs, source: "dht" } : undefined;
    } catch {
      const record = await dht.recordOf(peer, signal);
      if (record === undefined || !offers(record, kind, id)) return undefined;
      return { peerId: peer, record, local: false, latencyMs: await dht.latencyTo(peer, signal), source: "dht" };
    }
  };

  const find = async (kind: CapabilityKind, id: string, findOptions: FindOptions = {}): Promise<Candidate[]> => {
    const timeoutMs = findOptions.timeoutMs ?? 5_000;
    const signal = AbortSignal.timeout(timeoutMs);
    // One lookup hands its signal to every peer it asks and every DHT query.
    setMaxListeners(Infinity, signal);
    const strategy = findOptions.strategy ?? "auto";
    const byPeer = new Map<string, Candidate>();
    const add = (candidates: Candidate[]): void => {
      for (const c of candidates) {
        const known = byPeer.get(c.peerId);
        if (known === undefined || c.record.seq > known.record.seq) byPeer.set(c.peerId, c);
      }
    };
    if (!findOptions.excludeLocal) {
      const { record } = await localRecord();
      if (offers(record, kind, id)) add([{ peerId: self, record, local: true, latencyMs: 0, source: "local" }]);
    }
    const members = strategy === "dht" ? [] : await connectedMembers();
    // Members watched are known without asking, however many; those not heard from yet are asked while few, and watched from now on.
    const { cached, unheard } = fromWatches(members);
    add(cached.filter((c) => offers(c.record, kind, id)));
    const direct = strategy === "direct" || (strategy === "auto" && unheard.length <= (options.directAskMax ?? 32));
    if (direct) add(await askAll(unheard, kind, id, signal, timeoutMs));
    if (strategy === "dht" || (strategy === "auto" && [...byPeer.values()].every((c) => c.local))) {
      add(await dht.providers(kind, id, signal, (peer) => resolveProvider(peer, kind, id, signal, timeoutMs)));
    }
    return [...byPeer.values()];
  };

  const publish = async (): Promise<void> => {
    const signal = AbortSignal.any([AbortSignal.timeout(options.publishTimeoutMs ?? 10_000), stopping.signal]);
    setMaxListeners(Infinity, signal);
    await dht.publish(await localRecord(), signal);
  };

  let inFlight: Promise<void> | undefined;
  let lastPublish = 0;
  let published: SignedNodeRecord | undefined;
  const publishInBackground = (): void => {
    if (stopped || inFlight !== undefined) return;
    lastPublish = Date.now();
    inFlight = localRecord()
      .then(async (record) => {
        published = record;
        await publish();
      })
      .catch(report)
      .finally(() => (inFlight = undefined));
  };
  // Members watch each other's records (pushed as they change); the DHT serves those not heard from yet, and an idle
  // mesh should be quiet: an unchanged record is not published again until republishMs.
  const republishMs = options.republishMs ?? 30 * 60_000;
  const refresh = setInterval(() => {
    localRecord()
      .then((record) => {
        if (record !== published || Date.now() - lastPublish >= republishMs) publishInBackground();
      })
      .catch(report);
  }, options.refreshMs ?? 60_000);
  refresh.unref();
  // A publication made with few peers reaches few; a newly connected peer is a reason to publish again, at a bounded rate.
  const onPeer = (): void => {
    if (Date.now() - lastPublish > (options.publishTimeoutMs ?? 10_000)) publishInBackground();
  };
  libp2p.addEventListener("peer:connect", onPeer);
  publishInBackground();

  const members = async (timeoutMs = 2000): Promise<Candidate[]> => {
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopping.signal]);
    // Handed to every member not heard from, as a lookup's is.
    setMaxListeners(Infinity, signal);
    const { cached: out, unheard } = fromWatches(await connectedMembers());
    const answers = await Promise.allSettled(unheard.map((peer) => ask(peer, signal, timeoutMs)));
    for (const a of answers) if (a.status === "fulfilled") out.push({ peerId: a.value.record.peerId, record: a.value.record, local: false, latencyMs: a.value.latencyMs, source: "direct" });
    return out;
  };

  return {
    publish,
    localRecord,
    find,
    members,
    findAgent: (agentId, findOptions) => find("agent", agentId, findOptions),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(refresh);
      clearInterval(pushing);
      libp2p.removeEventListener("peer:connect", onPeer);
      stopping.abort(new Error("capability directory stopped"));
      await inFlight;
      await libp2p.unhandle(CAPS_PROTOCOL);
      await pool.close();
    },
  };
}

/** What {@link capabilityService} needs beyond the node's context. */
export type CapabilityServiceOptions = Omit<CapabilityDirectoryOptions, "libp2p" | "privateKey" | "isMember" | "onError">;

/**
 * The capability directory as a node service: the node's device key signs its
 * record, only members ask or are answered, and failures are reported.
 */
export function capabilityService(options: CapabilityServiceOptions): DefinedService<CapabilityDirectory> {
  return defineService(CAPS_PROTOCOL, (context) =>
    createCapabilityDirectory({
      ...options,
      libp2p: context.libp2p,
      privateKey: context.identity.privateKey,
      isMember: context.isMember,
      onError: (error) => context.report(error),
    }),
  );
}
