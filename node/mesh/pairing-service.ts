import { setTimeout as sleep } from "node:timers/promises";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { encodeInvite, parseInvite, type DeviceIdentity, type InviteBook, type SignedStatement } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { createMessageCodec, FramedChannel, handleFramed } from "../../protocols/framing/index.js";
import { relayOf } from "../../protocols/framing/connection-choice.js";
import { handlePairingRequest, PAIRING_PROTOCOL, runPairingJoiner } from "../../protocols/pairing/index.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";
import type { MeshService, ServiceContext } from "../services/mesh-service.js";
import type { Membership } from "./membership.js";

/**
 * Pairing messages are validated by the handshake itself; the frame only bounds
 * their size, which must fit a welcome carrying a large mesh's statements.
 */
const pairingCodec = createMessageCodec({ version: 1, schema: z.unknown(), maxMessageBytes: 16 * 1024 * 1024 });
const PAIRING_BUFFER_BYTES = 32 * 1024 * 1024;

/** Addresses an invite carries at most (its wire format's bound). */
const INVITE_MAX_ADDRS = 16;

/**
 * The addresses to put in an invite, best first and as many as it carries: a
 * node on many interfaces that also listens through relays has more than fit,
 * and a joiner on another machine needs the routable direct ones most, then
 * relayed ones, loopback last.
 */
export function inviteAddresses(addrs: readonly string[]): string[] {
  const rank = (a: string): number => (/^\/(ip4\/127\.|ip6\/::1\/)/.test(a) ? 2 : a.includes("/p2p-circuit") ? 1 : 0);
  return [...addrs].sort((a, b) => rank(a) - rank(b)).slice(0, INVITE_MAX_ADDRS);
}

/** What a completed pairing reports on either side. */
export interface PairingReport {
  peer: string;
  meshId: string;
  comparisonCode: string;
  level: string;
}

/** Options of {@link PairingService}. */
export interface PairingServiceOptions {
  identity: DeviceIdentity;
  membership: Membership;
  inviteBook: InviteBook;
  /** Records the mesh id locally when this node joins one. */
  pinMesh: (meshId: string) => void;
  /** Statements to file with a new member's certificate (e.g. its role grant), given the invite's level. */
  statementsForJoiner?: (joiner: string, level: "verified" | "trusted") => SignedStatement[];
  /** Told of each invite made, with its expiry, before the invite is handed out. */
  onInvite?: (expiresAt: number) => Promise<void>;
  /** Every pairing outcome, success or refusal, for the audit log. */
  onPairing?: (event: { role: "inviter" | "joiner"; ok: boolean; peer?: string; detail: string }) => void;
}

/**
 * Pairing over libp2p: the inviter serves the pairing protocol to anyone while an
 * invite is open (its door lets them connect for that only); the joiner dials the
 * inviter named in the invite (let in for the length of the join) and runs the
 * handshake.
 */
export class PairingService implements MeshService {
  readonly protocol = PAIRING_PROTOCOL;
  /** Peers in the middle of a handshake with us: their invite is already consumed, their certificate not yet filed. */
  private readonly pairing = new Set<string>();
  /** The inviter this node is joining through, and the relays its invite names, let in before this node is a member. */
  private joiningThrough = new Set<string>();
  private bound: { libp2p: MeshLibp2p; closeDoor: () => void } | undefined;

  constructor(private readonly options: PairingServiceOptions) {}

  /**
   * The comparison code of the latest pairing of `deviceId` with this node (the joiner's
   * `mesh join` printed the same), from the invite book, which keeps it across restarts.
   */
  comparisonCodeOf(deviceId: string): string | undefined {
    return this.options.inviteBook.list().findLast((i) => i.usedBy === deviceId && i.comparisonCode !== undefined)?.comparisonCode;
  }

  private get libp2p(): MeshLibp2p {
    if (this.bound === undefined) throw new CoderClawError("UNAVAILABLE", "pairing has not started");
    return this.bound.libp2p;
  }

  /** True while this node has an unexpired, unused invite: the gater then admits strangers for pairing. */
  hasOpenInvites(now = Date.now()): boolean {
    return this.options.inviteBook.list().some((i) => !i.usedBy && i.expiresAt > now);
  }

  /** True while `peer` is pairing with this node, so membership enforcement must not cut it off. */
  isPairing(peer: string): boolean {
    return this.pairing.has(peer);
  }

  /** Serve the pairing protocol, and let strangers connect while an invite is open or a handshake runs. */
  async start(context: ServiceContext): Promise<void> {
    const { libp2p } = context;
    const { identity, inviteBook, membership } = this.options;
    const closeDoor = context.openDoor((peer) => this.joiningThrough.has(peer) || this.hasOpenInvites() || this.isPairing(peer));
    this.bound = { libp2p, closeDoor };
    await handleFramed(libp2p, PAIRING_PROTOCOL, {
      codec: pairingCodec,
      settings: { maxBufferedBytes: PAIRING_BUFFER_BYTES },
      maxInboundStreams: 2,
      accept: () => this.hasOpenInvites(),
      onChannel: (channel) => {
        this.pairing.add(channel.peer);
        void (async () => {
          try {
            const outcome = await handlePairingRequest(channel, {
              identity,
              inviteBook,
              statements: () => membership.statements(),
              remotePeer: channel.peer,
              // Filed before the welcome: a crash after it leaves no joiner holding a certificate (and no role) this node forgot.
              file: async ({ joiner, certificate, invite }) => {
                await membership.add([certificate, ...(this.options.statementsForJoiner?.(joiner, invite.level) ?? [])]);
              },
            });
            this.options.onPairing?.({ role: "inviter", ok: true, peer: outcome.joiner, detail: `paired at ${outcome.invite.level}; code ${outcome.comparisonCode}` });
          } catch (err) {
            this.options.onPairing?.({ role: "inviter", ok: false, peer: channel.peer, detail: (err as Error).message });
          } finally {
            this.pairing.delete(channel.peer);
            await channel.close().catch(() => undefined);
          }
        })();
      },
    });
  }

  async stop(): Promise<void> {
    const bound = this.bound;
    if (bound === undefined) return;
    this.bound = undefined;
    bound.closeDoor();
    await bound.libp2p.unhandle(PAIRING_PROTOCOL).catch(() => undefined);
  }

  /** Issue an invite for a device to join at `level`, valid for `ttlMs`; returns the compact string. */
  async invite(level: "verified" | "trusted", ttlMs: number): Promise<{ invite: string; expiresAt: number }> {
    const meshId = this.options.membership.meshId;
    if (!meshId) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: run `coderclaw mesh create` first");
    const addrs = inviteAddresses(this.libp2p.getMultiaddrs().map((a) => a.toString()));
    if (addrs.length === 0) throw new CoderClawError("UNAVAILABLE", "this node listens on no address a joiner could dial");
    const invite = await this.options.inviteBook.create({ meshId, inviter: this.options.identity.peerId, addrs, level, expiresAt: Date.now() + ttlMs });
    await this.options.onInvite?.(invite.expiresAt);
    return { invite: encodeInvite(invite), expiresAt: invite.expiresAt };
  }

  /**
   * The pairing connection was opened by a stranger; members' protocols (sync,
   * routing, tasks) start on a new connection, once the inviter has filed our
   * certificate, which it does just after the handshake.
   */
  private async reconnectAsMember(inviterId: ReturnType<typeof peerIdFromString>): Promise<void> {
    const { libp2p } = this;
    await libp2p.hangUp(inviterId).catch(() => undefined);
    // The inviter refuses us until its store has our certificate, which can take a while on a busy machine.
    const deadline = Date.now() + 20_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      try {
        await libp2p.dial(inviterId, { signal: AbortSignal.timeout(5000) });
        return;
      } catch {
        await sleep(Math.min(1000, 100 * 2 ** attempt));
      }
    }
  }

  /** Join the mesh of `inviteText`: dial its inviter, pair, and keep the statements received. */
  async join(inviteText: string): Promise<PairingReport> {
    const invite = parseInvite(inviteText.trim());
    const current = this.options.membership.meshId;
    if (current !== undefined && current !== invite.meshId) {
      throw new CoderClawError("INVALID_INPUT", `this node is already in mesh ${current}; an invite to ${invite.meshId} cannot be used here`);
    }
    const { libp2p } = this;
    this.joiningThrough = new Set([invite.inviter, ...invite.addrs.map(relayOf).filter((r): r is string => r !== undefined)]);
    try {
      const inviterId = peerIdFromString(invite.inviter);
      await libp2p.peerStore.merge(inviterId, { multiaddrs: invite.addrs.map((a) => multiaddr(a)) });
      const stream = await libp2p.dialProtocol(inviterId, PAIRING_PROTOCOL, { signal: AbortSignal.timeout(15_000) });
      const channel = new FramedChannel<unknown>({ stream, codec: pairingCodec, peer: invite.inviter, maxBufferedBytes: PAIRING_BUFFER_BYTES });
      try {
        const result = await runPairingJoiner(channel, invite, this.options.identity);
        this.options.pinMesh(result.meshId);
        await this.options.membership.add([...result.statements, result.certificate]);
        this.options.onPairing?.({ role: "joiner", ok: true, peer: invite.inviter, detail: `joined ${result.meshId} at ${result.level}` });
        await channel.close().catch(() => undefined);
        await this.reconnectAsMember(inviterId);
        return { peer: invite.inviter, meshId: result.meshId, comparisonCode: result.comparisonCode, level: result.level };
      } finally {
        await channel.close().catch(() => undefined);
      }
    } catch (err) {
      this.options.onPairing?.({ role: "joiner", ok: false, peer: invite.inviter, detail: (err as Error).message });
      throw err;
    } finally {
      this.joiningThrough = new Set();
    }
  }
}
