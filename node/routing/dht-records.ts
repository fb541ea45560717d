import { peerIdFromString } from "@libp2p/peer-id";
import { setMaxListeners } from "node:events";
import { capabilityCid, nodeRecordKey, openNodeRecord, type CapabilityKind, type NodeRecord, type SignedNodeRecord } from "../../protocols/capability/node-record.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";

/** Options of {@link dhtRecords}. */
export interface DhtRecordsOptions {
  libp2p: MeshLibp2p;
  /** After the first provider is found, wait this long for more before ending the query. Default 50 ms. */
  providerGraceMs?: number;
  /** A failed DHT operation that did not stop the caller. */
  report: (error: unknown) => void;
}

/** This node's signed record and provider records in the DHT, and the lookups that read them. */
export interface DhtRecords {
  /** Put the signed record under the node's key and announce a provider record for each offer not announced before. */
  publish(signed: SignedNodeRecord, signal: AbortSignal): Promise<void>;
  /** The newest record signed by `peer` that the DHT holds, if any. */
  recordOf(peer: string, signal: AbortSignal): Promise<NodeRecord | undefined>;
  /** Round trip to `peer`, ms, or undefined when it does not answer a ping. */
  latencyTo(peer: string, signal: AbortSignal): Promise<number | undefined>;
  /** The providers of `id` of `kind` (but this node), each resolved by `resolve` as it arrives. */
  providers<C>(kind: CapabilityKind, id: string, signal: AbortSignal, resolve: (peer: string) => Promise<C | undefined>): Promise<Array<Awaited<C>>>;
}

async function drain(events: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of events);
}

/** The DHT side of capability records: the signed node records and the provider records of what each node offers. */
export function dhtRecords(options: DhtRecordsOptions): DhtRecords {
  const { libp2p, report } = options;
  const self = libp2p.peerId.toString();
  const provided = new Set<string>();

  const publish = async ({ record, bytes }: SignedNodeRecord, signal: AbortSignal): Promise<void> => {
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

  const recordOf = async (peer: string, signal: AbortSignal): Promise<NodeRecord | undefined> => {
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

  /**
   * A provider query otherwise walks to the end of the key space; once one
   * provider is known, the query gets `providerGraceMs` more to find others and
   * is then cut short.
   */
  const providers = async <C>(kind: CapabilityKind, id: string, signal: AbortSignal, resolve: (peer: string) => Promise<C | undefined>): Promise<Array<Awaited<C>>> => {
    const query = new AbortController();
    setMaxListeners(Infinity, query.signal);
    const stopQuery = (): void => query.abort(signal.reason);
    signal.addEventListener("abort", stopQuery, { once: true });
    const seen = new Set<string>([self]);
    const resolving: Array<Promise<C | undefined>> = [];
    let grace: ReturnType<typeof setTimeout> | undefined;
    try {
      for await (const event of libp2p.services.dht.findProviders(await capabilityCid(kind, id), { signal: query.signal })) {
        if (event.name !== "PROVIDER") continue;
        for (const provider of event.providers) {
          const peer = provider.id.toString();
          if (seen.has(peer)) continue;
          seen.add(peer);
          resolving.push(resolve(peer));
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
    return found.filter((c): c is Awaited<C> => c !== undefined);
  };

  return { publish, recordOf, latencyTo, providers };
}
