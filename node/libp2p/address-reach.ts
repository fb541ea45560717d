import type { Address, AddressSorter, Transport } from "@libp2p/interface";
import { circuitRelayAddressesLast, loopbackAddressLast, publicAddressesFirst, reliableTransportsFirst } from "@libp2p/utils";
import type { Multiaddr } from "@multiformats/multiaddr";

/** How long a failed address stays at the end of the dial order. */
const DEFAULT_FORGET_MS = 60_000;

/**
 * Which addresses this node's dials failed at lately. libp2p dials a peer's
 * addresses one at a time, each for up to six seconds, private ones before
 * relayed ones; a member behind another NAT advertises its LAN address, which
 * no one outside that LAN reaches, so every reconnect to it waited out that
 * address before trying the relay that works. The sorter puts an address that
 * failed lately and has never been reached from here after the others (it is
 * still tried). An address reached before keeps its place: a laptop on this
 * LAN that slept fails for a while and must be dialled directly when it wakes,
 * not through a relay that would then be kept.
 */
export class AddressReach {
  readonly #failedAt = new Map<string, number>();
  readonly #reached = new Set<string>();
  readonly #forgetMs: number;
  readonly #now: () => number;

  constructor(options: { forgetMs?: number; now?: () => number } = {}) {
    this.#forgetMs = options.forgetMs ?? DEFAULT_FORGET_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Record a dial's outcome at `address`. */
  record(address: Multiaddr, ok: boolean): void {
    const key = addressKey(address);
    if (ok) {
      this.#reached.add(key);
      this.#failedAt.delete(key);
      return;
    }
    this.#failedAt.delete(key);
    this.#failedAt.set(key, this.#now());
    // Oldest first (re-inserted above): the map stays bounded without scanning it.
    for (const [k, at] of this.#failedAt) {
      if (this.#failedAt.size <= MAX_REMEMBERED && this.#now() - at < this.#forgetMs) break;
      this.#failedAt.delete(k);
    }
  }

  /** True when a dial at `address` failed lately and none ever succeeded. */
  isDemoted(address: Multiaddr): boolean {
    const key = addressKey(address);
    const at = this.#failedAt.get(key);
    return at !== undefined && this.#now() - at < this.#forgetMs && !this.#reached.has(key);
  }

  /** libp2p's address order, with demoted addresses last. */
  readonly sorter: AddressSorter = (a: Address, b: Address) =>
    compareBool(this.isDemoted(a.multiaddr), this.isDemoted(b.multiaddr)) ||
    loopbackAddressLast(a.multiaddr, b.multiaddr) ||
    publicAddressesFirst(a.multiaddr, b.multiaddr) ||
    circuitRelayAddressesLast(a.multiaddr, b.multiaddr) ||
    compareBool(!a.isCertified, !b.isCertified) ||
    reliableTransportsFirst(a.multiaddr, b.multiaddr);

  /** Wraps a transport factory so that its dials are recorded here. */
  observe<C>(factory: (components: C) => Transport): (components: C) => Transport {
    return (components) => {
      const transport = factory(components);
      const dial = transport.dial.bind(transport);
      transport.dial = async (ma, options) => {
        try {
          const connection = await dial(ma, options);
          this.record(ma, true);
          return connection;
        } catch (err) {
          this.record(ma, false);
          throw err;
        }
      };
      return transport;
    };
  }
}

/** Failed addresses remembered at most; a personal or team mesh stays far below. */
const MAX_REMEMBERED = 4096;

const compareBool = (a: boolean, b: boolean): -1 | 0 | 1 => (a === b ? 0 : a ? 1 : -1);

/** The address without the dialled peer's trailing `/p2p/<id>`: the sorter may see it with or without. */
function addressKey(address: Multiaddr): string {
  return address.toString().replace(/\/p2p\/[^/]+$/, "");
}
