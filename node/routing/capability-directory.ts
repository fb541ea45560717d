import type { PeerId, PrivateKey } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { setMaxListeners } from "node:events";
import { CAPS_PROTOCOL, createCapsCodec, type CapsMessage } from "../../protocols/capability/messages.js";
import {
  capabilityCid,
  nodeRecordKey,
  openNodeRecord,
  signNodeRecord,
  type CapabilityKind,
  type NodeRecord,
  type SignedNodeRecord,
} from "../../protocols/capability/node-record.js";
import type { FramedChannel } from "../../protocols/framing/channel.js";
import { ChannelClosedError } from "../../protocols/framing/errors.js";
import { createPeerRateLimiter, type PeerRateLimiter } from "../../protocols/framing/limits.js";
import { ChannelPool, handleFramed } from "../../protocols/framing/pool.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";

/** What this node offers now; read whenever a record is signed or served. */
export interface LocalCapabilities {
  agents: string[];
  skills: string[];
  capabilities: string[];
  load: number;
  maxConcurrency: number;
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
  /** Node record republished this often (load goes stale otherwise). Default 60 s. */
  refreshMs?: number;
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
  /** The signed records of every connected member that answers within `timeoutMs` (default 2 s), with latency. */
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

/** `promise`, or the signal's reason once it aborts, whichever comes first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

async function drain(events: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of events);
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
  let signed: { content: string; record: SignedNodeRecord } | undefined;
  let lastSeq = 0;
  const provided = new Set<string>();
  let stopped = false;
  const stopping = new AbortController();

  const localRecord = async (): Promise<SignedNodeRecord> => {
    const caps = options.local();
    const content = JSON.stringify([caps.agents, caps.skills, caps.capabilities, caps.load, caps.maxConcurrency, options.version]);
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

  await handleFramed<CapsMessage>(libp2p, CAPS_PROTOCOL, {
    codec,
    settings,
    maxInboundStreams: 2,
    accept: async (peer) => !stopped && (await isMember(peer)),
    onError: (_peer, error) => report(error),
    onChannel: (channel) => {
      void (async () => {
        for await (const message of channel) {
          if (message.t !== "get") continue;
          await channel.send({ t: "record", n: message.n, record: (await localRecord()).bytes });
        }
      })().catch(report);
    },
  });

  const pool = new ChannelPool<CapsMessage>({ libp2p, protocol: CAPS_PROTOCOL, codec, settings: settings, openTimeoutMs: 5_000 });
  interface PendingAnswer {
    resolve: (bytes: Uint8Array) => void;
    reject: (error: unknown) => void;
  }
  const waiting = new Map<FramedChannel<CapsMessage>, Map<number, PendingAnswer>>();
  let nextRequest = 0;

  /** One reader per outbound channel routes answers to their requests by `n`; a closed channel fails its requests. */
  const answersOf = (channel: FramedChannel<CapsMessage>): Map<number, PendingAnswer> => {
    const existing = waiting.get(channel);
    if (existing !== undefined) return existing;
    const pending = new Map<number, PendingAnswer>();
    waiting.set(channel, pending);
    void (async () => {
      try {
        for await (const message of channel) if (message.t === "record") pending.get(message.n)?.resolve(message.record);
      } catch (error) {
        report(error);
      } finally {
        waiting.delete(channel);
        const closed = channel.failure ?? new ChannelClosedError(`caps channel to ${channel.peer} closed`, { peer: channel.peer });
        for (const answer of pending.values()) answer.reject(closed);
      }
    })();
    return pending;
  };

  const ask = async (peer: PeerId, signal: AbortSignal): Promise<{ record: NodeRecord; latencyMs: number }> => {
    const channel = await untilAborted(pool.get(peer), signal);
    const pending = answersOf(channel);
    const n = nextRequest++;
    const started = performance.now();
    let onAbort = (): void => undefined;
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      const settle = (): void => {
        signal.removeEventListener("abort", onAbort);
        pending.delete(n);
      };
      onAbort = () => {
        settle();
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      pending.set(n, {
        resolve: (bytes) => {
          settle();
          resolve(bytes);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
    });
    // Not awaited: a send stuck waiting for the peer to drain must not outlive the lookup, and the answer
    // promise already ends on an answer, a closed channel or the lookup's signal.
    channel.send({ t: "get", n }).catch((error: unknown) => pending.get(n)?.reject(error));
    const bytes = await answer;
    const latencyMs = performance.now() - started;
    const { record } = await openNodeRecord(bytes);
    if (record.peerId !== peer.toString()) throw new Error(`${peer.toString()} answered with the record of ${record.peerId}`);
    return { record, latencyMs };
  };

  const connectedMembers = async (): Promise<PeerId[]> => {
    const unique = new Map<string, PeerId>();
    for (const connection of libp2p.getConnections()) unique.set(connection.remotePeer.toString(), connection.remotePeer);
    const members = await Promise.all([...unique.values()].map(async (peer) => ((await isMember(peer.toString())) ? peer : undefined)));
    return members.filter((p): p is PeerId => p !== undefined);
  };

  const askAll = async (peers: PeerId[], kind: CapabilityKind, id: string, signal: AbortSignal): Promise<Candidate[]> => {
    const answers = await Promise.allSettled(peers.map((peer) => ask(peer, signal)));
    const out: Candidate[] = [];
    for (const answer of answers) {
      if (answer.status === "rejected") continue;
      const { record, latencyMs } = answer.value;
      if (offers(record, kind, id)) out.push({ peerId: record.peerId, record, local: false, latencyMs, source: "direct" });
    }
    return out;
  };

  const recordFromDht = async (peer: string, signal: AbortSignal): Promise<NodeRecord | undefined> => {
    let best: NodeRecord | undefined;
    try {
      for await (const event of libp2p.services.dht.get(nodeRecordKey(peer), { signal })) {
        if (event.name !== "VALUE") continue;
        try {
          const { record } = await openNodeRecord(event.value);
          if (record.peerId === peer && (best === undefined || record.seq > best.seq)) best = record;
        } catch (error) {
          report(error);
        }
      }
    } catch (error) {
      if (best === undefined && !signal.aborted) report(error);
    }
    return best;
  };

  const latencyTo = async (peer: string, signal: AbortSignal): Promise<number | undefined> => {
    try {
      return await libp2p.services.ping.ping(peerIdFromString(peer), { signal });
    } catch {
      return undefined;
    }
  };

  /** A provider's record, asked directly on its caps stream (dialing it), else read from the DHT. */
  const resolveProvider = async (peer: string, kind: CapabilityKind, id: string, signal: AbortSignal): Promise<Candidate | undefined> => {
    try {
      const { record, latencyMs } = await ask(peerIdFromString(peer), signal);
      return offers(record, kind, id) ? { peerId: peer, record, local: false, latencyMs, source: "dht" } : undefined;
    } catch {
      const record = await recordFromDht(peer, signal);
      if (record === undefined || !offers(record, kind, id)) return undefined;
      return { peerId: peer, record, local: false, latencyMs: await latencyTo(peer, signal), source: "dht" };
    }
  };

  /**
   * Providers from the DHT, resolved as they arrive. A provider query otherwise
   * walks to the end of the key space; once one provider is known, the query
   * gets `providerGraceMs` more to find others and is then cut short.
   */
  const fromDht = async (kind: CapabilityKind, id: string, signal: AbortSignal): Promise<Candidate[]> => {
    const query = new AbortController();
    setMaxListeners(Infinity, query.signal);
    const stopQuery = (): void => query.abort(signal.reason);
    signal.addEventListener("abort", stopQuery, { once: true });
    const seen = new Set<string>([self]);
    const resolving: Array<Promise<Candidate | undefined>> = [];
    let grace: ReturnType<typeof setTimeout> | undefined;
    try {
      for await (const event of libp2p.services.dht.findProviders(await capabilityCid(kind, id), { signal: query.signal })) {
        if (event.name !== "PROVIDER") continue;
        for (const provider of event.providers) {
          const peer = provider.id.toString();
          if (seen.has(peer)) continue;
          seen.add(peer);
          resolving.push(resolveProvider(peer, kind, id, signal));
          grace ??= setTimeout(() => query.abort(new Error("provider grace period over")), options.providerGraceMs ?? 50);
        }
      }
    } catch (error) {
      if (!query.signal.aborted) report(error);
    } finally {
      if (grace !== undefined) clearTimeout(grace);
      signal.removeEventListener("abort", stopQuery);
    }
    const found = await Promise.all(resolving);
    return found.filter((c): c is Candidate => c !== undefined);
  };

  const find = async (kind: CapabilityKind, id: string, findOptions: FindOptions = {}): Promise<Candidate[]> => {
    const signal = AbortSignal.timeout(findOptions.timeoutMs ?? 5_000);
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
    const direct = strategy === "direct" || (strategy === "auto" && members.length <= (options.directAskMax ?? 32));
    if (direct) add(await askAll(members, kind, id, signal));
    if (strategy === "dht" || (strategy === "auto" && [...byPeer.values()].every((c) => c.local))) {
      add(await fromDht(kind, id, signal));
    }
    return [...byPeer.values()];
  };

  const publish = async (): Promise<void> => {
    const signal = AbortSignal.any([AbortSignal.timeout(options.publishTimeoutMs ?? 10_000), stopping.signal]);
    setMaxListeners(Infinity, signal);
    const { record, bytes } = await localRecord();
    const dht = libp2p.services.dht;
    const keys: Array<[CapabilityKind, string]> = [
      ...record.agents.map((a): [CapabilityKind, string] => ["agent", a]),
      ...record.skills.map((s): [CapabilityKind, string] => ["skill", s]),
      ...record.capabilities.map((c): [CapabilityKind, string] => ["cap", c]),
    ];
    const results = await Promise.allSettled([
      drain(dht.put(nodeRecordKey(self), bytes, { signal })),
      ...keys.map(async ([kind, id]) => {
        const cid = await capabilityCid(kind, id);
        // kad-dht reprovides on its own schedule; a refresh only announces what is new.
        if (provided.has(cid.toString())) return;
        await drain(dht.provide(cid, { signal }));
        provided.add(cid.toString());
      }),
    ]);
    for (const result of results) if (result.status === "rejected" && !signal.aborted) report(result.reason);
  };

  let inFlight: Promise<void> | undefined;
  let lastPublish = 0;
  const publishInBackground = (): void => {
    if (stopped || inFlight !== undefined) return;
    lastPublish = Date.now();
    inFlight = publish()
      .catch(report)
      .finally(() => (inFlight = undefined));
  };
  const refresh = setInterval(publishInBackground, options.refreshMs ?? 60_000);
  refresh.unref();
  // A publication made with few peers reaches few; a newly connected peer is a reason to publish again, at a bounded rate.
  const onPeer = (): void => {
    if (Date.now() - lastPublish > (options.publishTimeoutMs ?? 10_000)) publishInBackground();
  };
  libp2p.addEventListener("peer:connect", onPeer);
  publishInBackground();

  const members = async (timeoutMs = 2000): Promise<Candidate[]> => {
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopping.signal]);
    const answers = await Promise.allSettled((await connectedMembers()).map((peer) => ask(peer, signal)));
    return answers.flatMap((a) => (a.status === "fulfilled" ? [{ peerId: a.value.record.peerId, record: a.value.record, local: false, latencyMs: a.value.latencyMs, source: "direct" as const }] : []));
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
      libp2p.removeEventListener("peer:connect", onPeer);
      stopping.abort(new Error("capability directory stopped"));
      await inFlight;
      await libp2p.unhandle(CAPS_PROTOCOL);
      await pool.close();
    },
  };
}
