import type { Connection, Libp2p } from "@libp2p/interface";
import type { Multiaddr } from "@multiformats/multiaddr";

/**
 * Dial `addrs` (of one peer). libp2p joins a dial to a peer that already has
 * one queued, adding the addresses to it; when that queued dial was by peer id
 * alone (a member redial, a discovery, a dispatcher reaching a member) and is
 * already looking the peer up in the DHT, it has taken its address list before
 * ours arrived and fails with NoValidAddressesError, and so does the joined
 * dial, although the addresses given were never tried. Dialled once more, alone.
 */
export async function dialAddresses(libp2p: Pick<Libp2p, "dial">, addrs: Multiaddr | Multiaddr[], options: { signal?: AbortSignal } = {}): Promise<Connection> {
  try {
    return await libp2p.dial(addrs, options);
  } catch (error) {
    if ((error as Error).name !== "NoValidAddressesError" || options.signal?.aborted === true) throw error;
    return libp2p.dial(addrs, options);
  }
}
