import type { Connection, Libp2p } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { z } from "zod";
import { ChannelClosedError, createMessageCodec, createPeerRateLimiter, FramedChannel, FrameTimeoutError } from "../../protocols/framing/index.js";
import { handleFramed } from "../../protocols/framing/pool.js";
import { isRelayed, relayOf } from "../../protocols/framing/connection-choice.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import type { MeshService, ServiceContext } from "../services/mesh-service.js";

/** A member behind a NAT tells the relays it listens through that it is inviting, until when. */
export const RELAY_DOOR_PROTOCOL = "/coderclaw/relay-door/1.0.0";

/** The longest a door stays open on one message: an invite's longest life. */
export const MAX_DOOR_MS = 7 * 24 * 3600 * 1000;

/** The one message of the door protocol, both ways: the member's door, and the relay's answer (the door it recorded, 0 when closed). */
export const doorCodec = createMessageCodec({ version: 1, schema: z.strictObject({ untilMs: z.number().int().nonnegative() }), maxMessageBytes: 64 });

/** Options of {@link RelayDoors}. */
export interface RelayDoorsOptions {
  /** Whether this node relays now (`relay: auto` changes it): only then are doors taken and strangers let in for them. */
  serving: () => boolean;
  now?: () => number;
}

/**
 * Pairing through a relay. A relay carries members' traffic only, so a joiner
 * behind one NAT could not reach an inviter behind another: its invite names
 * the inviter's relayed address, and the relay refused the stranger. Now an
 * inviting member tells its relays (over its direct connection to each) until
 * when its invite is open; while a door is open, a relay lets strangers
 * connect to it and carries their connections to that member only, whose own
 * gater lets in, for pairing, only who its open invite admits. Strangers still
 * get no slot, and no hop to any member that is not inviting.
 */
export class RelayDoors implements MeshService {
  readonly protocol = RELAY_DOOR_PROTOCOL;
  readonly #doors = new Map<string, number>();
  readonly #o: RelayDoorsOptions;
  /** Refusals audited: a burst, then one every 10 s, whoever sends them. */
  readonly #refusalsAudited = createPeerRateLimiter({ framesPerSecond: 0.1, burst: 20, maxPeers: 1 });
  #bound: { libp2p: MeshLibp2p; closeDoor: () => void; isMember: (peer: string) => boolean } | undefined;

  constructor(options: RelayDoorsOptions) {
    this.#o = options;
  }

  /** May a stranger's connection be relayed to `member` now? Not once `member` is no longer one (revoked meanwhile). */
  isOpen(member: string): boolean {
    const until = this.#doors.get(member);
    if (until === undefined) return false;
    if (until > this.#now() && this.#bound?.isMember(member) === true) return this.#o.serving();
    this.#doors.delete(member);
    return false;
  }

  async start(context: ServiceContext): Promise<void> {
    const { libp2p } = context;
    const closeDoor = context.openDoor(() => [...this.#doors.keys()].some((member) => this.isOpen(member)));
    this.#bound = { libp2p, closeDoor, isMember: (peer) => context.isMember(peer) };
    await handleFramed(libp2p, RELAY_DOOR_PROTOCOL, {
      codec: doorCodec,
      maxInboundStreams: 2,
      accept: (peer, connection) => {
        const refused = this.#refusal(peer, connection, context);
        // A stranger let in by another member's door may try as often as it likes: what it leaves in the log is bounded.
        if (refused !== undefined && this.#refusalsAudited.take("")) context.audit({ action: "relay.door", peer, result: "denied", reason: refused });
        return refused === undefined;
      },
      onChannel: (channel) => {
        void (async () => {
          try {
            const { untilMs } = await channel.receive({ timeoutMs: 5000 });
            const now = this.#now();
            const until = Math.min(untilMs, now + MAX_DOOR_MS);
            const open = until > now;
            if (open) this.#doors.set(channel.peer, until);
            else this.#doors.delete(channel.peer);
            context.audit({ action: "relay.door", peer: channel.peer, result: "allowed", reason: open ? `open until ${new Date(until).toISOString()}` : "closed" });
            // The door as recorded: the member knows its message was taken (a member of an older version reads no answer).
            await channel.send({ untilMs: open ? until : 0 }).catch(() => undefined);
          } catch (err) {
            context.audit({ action: "relay.door", peer: channel.peer, result: "denied", reason: (err as Error).message });
            context.report(err as Error, channel.peer);
          } finally {
            await channel.close().catch(() => undefined);
          }
        })();
      },
    });
  }

  async stop(): Promise<void> {
    const bound = this.#bound;
    this.#bound = undefined;
    if (bound === undefined) return;
    bound.closeDoor();
    await bound.libp2p.unhandle(RELAY_DOOR_PROTOCOL).catch(() => undefined);
  }

  /**
   * Why `peer`'s door message on `connection` opens nothing, if it does not.
   * Only a member's own word counts, and only over a direct connection: the one
   * its reservation here rides on, so a member that reaches this node through
   * another relay does not hold doors on a relay it does not listen through.
   */
  #refusal(peer: string, connection: Connection, context: ServiceContext): string | undefined {
    if (!this.#o.serving()) return "this node does not relay now";
    if (!context.isMember(peer)) return "not a member";
    if (isRelayed(connection)) return `over a relayed connection (through ${relayOf(connection.remoteAddr.toString()) ?? "another relay"}), not a direct one`;
    return undefined;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}

/** Times a door message is sent to one relay at most, and the pause between two. */
const DOOR_TRIES = 3;
const DOOR_RETRY_MS = 250;
/** How long a relay has to answer a door message, ms: an invite waits for its relays before it is handed out. */
const DOOR_ANSWER_MS = 2000;

/**
 * Tell each relay this node listens through that its door is open until
 * `untilMs`; answers the relays told. A relay that cannot be told is skipped:
 * the invite's direct addresses may still serve.
 */
export async function announceRelayDoor(libp2p: MeshLibp2p, untilMs: number, onError: (relay: string, error: Error) => void): Promise<string[]> {
  const relays = new Set(libp2p.getMultiaddrs().map((a) => relayOf(a.toString())).filter((r): r is string => r !== undefined));
  const told: string[] = [];
  await Promise.all(
    [...relays].map(async (relay) => {
      try {
        await tellRelay(libp2p, relay, untilMs);
        told.push(relay);
      } catch (err) {
        onError(relay, err as Error);
      }
    }),
  );
  return told;
}

/**
 * Sends the door message to `relay` over a direct connection until it is
 * known taken: the relay answers with the door it recorded (a relay of an
 * older version ends the stream without an answer, which is taken as done).
 * A stream refused or reset, or a connection gone, before either (a pair that
 * just met may retire one of its two connections as the message goes) is
 * tried again, up to {@link DOOR_TRIES} times; the last failure is thrown. A
 * relay that neither answers nor ends the stream within {@link DOOR_ANSWER_MS}
 * fails at once.
 */
export async function tellRelay(libp2p: Libp2p, relay: string, untilMs: number): Promise<void> {
  let failure: Error = new Error("not tried");
  for (let attempt = 0; attempt < DOOR_TRIES; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, DOOR_RETRY_MS));
    const connection = libp2p.getConnections(peerIdFromString(relay)).find((c) => !isRelayed(c) && c.status === "open");
    if (connection === undefined) {
      failure = new Error("no direct connection to it");
      continue;
    }
    let channel: FramedChannel<{ untilMs: number }> | undefined;
    try {
      const stream = await connection.newStream(RELAY_DOOR_PROTOCOL, { signal: AbortSignal.timeout(5000) });
      channel = new FramedChannel({ stream, codec: doorCodec, peer: relay });
      await channel.send({ untilMs });
      await channel.receive({ timeoutMs: DOOR_ANSWER_MS });
      return;
    } catch (err) {
      if (err instanceof ChannelClosedError && channel !== undefined && channel.failure === undefined) return;
      // A relay that holds the stream open without answering would do so again: the invite waits no longer for it.
      if (err instanceof FrameTimeoutError) throw err;
      failure = err as Error;
    } finally {
      await channel?.close().catch(() => undefined);
    }
  }
  throw failure;
}
