import { readFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import type { Connection, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { writeFileAtomic } from "../../identity/index.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import { dialAddresses } from "../libp2p/dial-addresses.js";

/** Addresses kept per member, newest first: enough for its interfaces, a relayed address or two, and an old network. */
const ADDRS_PER_PEER = 16;
/** Members the book keeps (the most recently seen); a personal or team mesh stays far below. */
const MAX_PEERS = 1024;
/** The book file is refused beyond this, before it is parsed. */
const MAX_FILE_BYTES = 1024 * 1024;

const bookSchema = z.strictObject({
  version: z.literal(1),
  peers: z
    .array(
      z.strictObject({
        peer: z.string().min(1).max(128),
        seen: z.number().int().nonnegative(),
        addrs: z.array(z.string().min(1).max(512)).max(ADDRS_PER_PEER),
      }),
    )
    .max(MAX_PEERS),
});

interface Entry {
  seen: number;
  addrs: string[];
}

/** Options of {@link startMemberRedial}. */
export interface MemberRedialOptions {
  libp2p: MeshLibp2p;
  /** The members to keep connected (this node among them is skipped). */
  members: () => readonly string[];
  /** Asked before each dial: a member blocked here meanwhile is not dialled. */
  isMember: (peer: string) => boolean;
  /** Where members' last known addresses are kept across restarts (in the node's home). */
  file: string;
  /** First wait after a failed dial; it doubles per failure up to {@link maxBackoffMs}. Default 1 s. */
  minBackoffMs?: number;
  /** Longest wait between dials to an unreachable member, and so the longest a restored one waits. Default 10 s. */
  maxBackoffMs?: number;
  /** How often members, the network and the clock are looked at. Default 1 s. */
  tickMs?: number;
  onError?: (error: Error) => void;
}

/** A running {@link startMemberRedial}. */
export interface MemberRedial {
  /** Members' remembered addresses (for doctor and tests). */
  addresses(peer: string): readonly string[];
  /** Forget backoffs and dial every unconnected member now; drop connections that no longer answer. */
  nudge(reason: string): void;
  /** Stop dialling and write the book. */
  stop(): Promise<void>;
}

/**
 * Keeps members connected for as long as they are members. libp2p redials a
 * keep-alive peer a few times (about half a minute) and then gives up for
 * good, and it forgets addresses at restart; a laptop that slept, moved to
 * another network or lost its uplink for a minute would stay apart until
 * someone restarted it. So this node remembers each member's last known
 * addresses (its listen addresses from identify, relayed ones among them, and
 * where we reached it), persisted in the home, and dials every unconnected
 * member with a backoff capped at {@link MemberRedialOptions.maxBackoffMs}.
 * When none of the addresses known works, the member is looked up in the DHT
 * (the connected members answer with what they know of it) and dialled again.
 * A change of this machine's interface addresses, or a clock jump (sleep),
 * resets the backoffs and checks live connections with a ping: a connection
 * from an address the machine no longer has never closes on its own.
 */
export async function startMemberRedial(options: MemberRedialOptions): Promise<MemberRedial> {
  const { libp2p } = options;
  const log = libp2p.logger.forComponent("coderclaw:redial");
  const minBackoff = options.minBackoffMs ?? 1000;
  const maxBackoff = options.maxBackoffMs ?? 10_000;
  const tickMs = options.tickMs ?? 1000;
  const self = libp2p.peerId.toString();
  const book = await loadBook(options.file).catch((error: Error) => {
    options.onError?.(error);
    return new Map<string, Entry>();
  });
  const backoff = new Map<string, { next: number; wait: number }>();
  const dialing = new Set<string>();
  let dirty = false;
  let stopped = false;

  for (const [peer, entry] of book) {
    await libp2p.peerStore.merge(peerIdFromString(peer), { multiaddrs: entry.addrs.map((a) => multiaddr(a)) }).catch((error: Error) => options.onError?.(error));
  }

  const remember = (peer: string, addrs: readonly Multiaddr[]): void => {
    if (peer === self || !options.isMember(peer)) return;
    const fresh = addrs.map((a) => withoutPeer(a.toString(), peer)).filter((a) => a.length <= 512);
    if (fresh.length === 0) return;
    const old = book.get(peer)?.addrs ?? [];
    book.delete(peer);
    book.set(peer, { seen: Date.now(), addrs: [...new Set([...fresh, ...old])].slice(0, ADDRS_PER_PEER) });
    while (book.size > MAX_PEERS) book.delete(book.keys().next().value!);
    dirty = true;
  };
  const onIdentify = (event: CustomEvent<{ peerId: PeerId; listenAddrs: Multiaddr[] }>): void => remember(event.detail.peerId.toString(), event.detail.listenAddrs);
  // An outbound direct connection's remote address is one we reached the member at; an inbound one's port is ephemeral.
  const onOpen = (event: CustomEvent<Connection>): void => {
    const connection = event.detail;
    if (connection.direction === "outbound") remember(connection.remotePeer.toString(), [connection.remoteAddr]);
    backoff.delete(connection.remotePeer.toString());
  };
  libp2p.addEventListener("peer:identify", onIdentify);
  libp2p.addEventListener("connection:open", onOpen);

  const connected = (peer: string): boolean => libp2p.getConnections().some((c) => c.remotePeer.toString() === peer && c.status === "open");
  const dial = (peer: string): void => {
    dialing.add(peer);
    const addrs = (book.get(peer)?.addrs ?? []).map((a) => multiaddr(`${a}/p2p/${peer}`));
    const target = peerIdFromString(peer);
    void (async () => {
      // The peer store may know addresses the book does not (bootstrap, discovery); each is tried in turn.
      try {
        await libp2p.dial(target, { signal: AbortSignal.timeout(8000) });
        return;
      } catch (error) {
        if (addrs.length > 0 && (await dialAddresses(libp2p, addrs, { signal: AbortSignal.timeout(8000) }).then(() => true, () => false))) return;
        // Where the member listens now may be known only to the members this node reaches: a relayed address
        // it took after this node last saw it (behind a NAT, the only one that works). The DHT asks them; what
        // it finds goes into the peer store, and the member is dialled again with it.
        const found = await libp2p.peerRouting.findPeer(target, { useCache: false, signal: AbortSignal.timeout(8000) }).catch(() => undefined);
        if (found === undefined || found.multiaddrs.length === 0) throw error;
      }
      await libp2p.dial(target, { signal: AbortSignal.timeout(8000) });
    })()
      .then(
        () => backoff.delete(peer),
        (error: Error) => {
          const wait = Math.min(maxBackoff, (backoff.get(peer)?.wait ?? minBackoff / 2) * 2);
          backoff.set(peer, { next: Date.now() + wait, wait });
          log.trace("redial of %s failed, next in %d ms: %e", peer, wait, error);
        },
      )
      .finally(() => dialing.delete(peer));
  };
  // A connection from an address this machine no longer has, or across a sleep, may look open and never carry a byte again.
  const dropDead = (): void => {
    for (const connection of libp2p.getConnections()) {
      if (!options.isMember(connection.remotePeer.toString())) continue;
      libp2p.services.ping.ping(connection.remotePeer, { signal: AbortSignal.timeout(3000) }).catch((error: Error) => {
        log("dropping a connection to %p that no longer answers: %e", connection.remotePeer, error);
        connection.abort(error);
      });
    }
  };
  const nudge = (reason: string): void => {
    log("%s: redialling members now", reason);
    backoff.clear();
    dropDead();
  };

  let interfaces = interfaceSignature();
  let lastTick = Date.now();
  const tick = (): void => {
    const now = Date.now();
    const seen = interfaceSignature();
    if (seen !== interfaces) {
      interfaces = seen;
      nudge("this machine's addresses changed");
    } else if (now - lastTick > tickMs * 5) nudge(`the clock jumped ${now - lastTick} ms (sleep)`);
    lastTick = now;
    for (const peer of options.members()) {
      if (peer === self || dialing.has(peer) || !options.isMember(peer) || connected(peer)) continue;
      if ((backoff.get(peer)?.next ?? 0) > now) continue;
      dial(peer);
    }
    if (dirty) {
      dirty = false;
      void saveBook(options.file, book).catch((error: Error) => options.onError?.(error));
    }
  };
  const timer = setInterval(() => {
    if (!stopped) tick();
  }, tickMs);
  timer.unref();

  return {
    addresses: (peer) => book.get(peer)?.addrs ?? [],
    nudge,
    async stop() {
      stopped = true;
      clearInterval(timer);
      libp2p.removeEventListener("peer:identify", onIdentify);
      libp2p.removeEventListener("connection:open", onOpen);
      if (dirty) await saveBook(options.file, book).catch((error: Error) => options.onError?.(error));
    },
  };
}

/** The machine's interface addresses, as one string that changes when any of them does. */
function interfaceSignature(): string {
  return Object.entries(networkInterfaces())
    .flatMap(([name, infos]) => (infos ?? []).map((i) => `${name}=${i.address}`))
    .sort()
    .join(",");
}

/** An address without its trailing `/p2p/<peer>` (a relayed one keeps its relay's). */
function withoutPeer(address: string, peer: string): string {
  const suffix = `/p2p/${peer}`;
  return address.endsWith(suffix) ? address.slice(0, -suffix.length) : address;
}

async function loadBook(file: string): Promise<Map<string, Entry>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw error;
  }
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new Error(`${file}: members' address book is over ${MAX_FILE_BYTES} bytes; ignored`);
  let parsed: z.infer<typeof bookSchema>;
  try {
    parsed = bookSchema.parse(JSON.parse(text));
  } catch (error) {
    throw new Error(`${file}: members' address book is not valid (${error instanceof z.ZodError ? z.prettifyError(error) : (error as Error).message}); ignored`);
  }
  const book = new Map<string, Entry>();
  for (const { peer, seen, addrs } of parsed.peers.sort((x, y) => x.seen - y.seen)) {
    try {
      peerIdFromString(peer);
      for (const a of addrs) multiaddr(a);
    } catch (error) {
      throw new Error(`${file}: members' address book names a bad peer or address for ${peer.slice(0, 64)} (${(error as Error).message}); ignored`);
    }
    book.set(peer, { seen, addrs });
  }
  return book;
}

function saveBook(file: string, book: Map<string, Entry>): Promise<void> {
  const peers = [...book].map(([peer, e]) => ({ peer, seen: e.seen, addrs: e.addrs }));
  return writeFileAtomic(file, `${JSON.stringify({ version: 1, peers })}\n`, { mode: 0o600 });
}
