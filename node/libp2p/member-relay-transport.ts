import { circuitRelayTransport, type CircuitRelayTransportComponents } from "@libp2p/circuit-relay-v2";
import type { Transport } from "@libp2p/interface";

/** A walk that finds no one: relays are members, found as they connect. */
const NO_WALK: CircuitRelayTransportComponents["randomWalk"] = {
  async *walk() {},
};

/**
 * libp2p's circuit relay transport, looking for relays among connected peers
 * and the peer store only. While a node listening on `/p2p-circuit` lacks a
 * reservation, the library's relay discovery walks the DHT for random keys,
 * one query after another with no pause, and dials every peer a query names.
 * In a mesh that walk finds nothing new (every relay is a member, and members
 * are dialled and kept connected anyway, looked up in the DHT when their known
 * addresses fail: see member-redial.ts; a relay is reserved on as soon as
 * identify shows it on a connection), while its cost is unbounded: measured
 * in the reach tests' redial topology, a relay that listened on
 * `/p2p-circuit` walked for as long as it ran, 77% of a core idle and 130
 * failed dials a second while a member was cut off (the member it queried
 * spent 40% of a core answering). The walk is the transport's only use of
 * `randomWalk`, so the transport is given one that ends at once.
 */
export function memberRelayTransport(): (components: CircuitRelayTransportComponents) => Transport {
  const factory = circuitRelayTransport();
  return (components) =>
    factory(
      new Proxy(components, {
        get: (target, prop, receiver) => (prop === "randomWalk" ? NO_WALK : (Reflect.get(target, prop, receiver) as unknown)),
      }),
    );
}
