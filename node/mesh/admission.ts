import { KEEP_ALIVE, type PeerId } from "@libp2p/interface";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";

/** Who is a member now, as the statements say. */
export interface MemberView {
  isMember(peer: string): boolean;
}

/** A way in for peers that are not members (pairing while an invite is open). */
export type Door = (peer: string) => boolean;

/** Options of {@link createAdmission}. */
export interface AdmissionOptions {
  members: MemberView;
  /** Failures of keep-alive tagging. */
  onError?: (error: Error) => void;
}

/**
 * Who may hold a connection to this node and speak its members' protocols, in
 * one place: members, minus peers blocked here (a misbehaving member, for a
 * while), plus strangers a service lets in through a door (pairing, while an
 * invite is open). Applied at the connection gater and again to live
 * connections whenever membership changes (a revocation cuts a device off
 * wherever the statement reaches). Members are kept connected.
 */
export interface Admission {
  /** May `peer` hold a connection now? The connection gater's question. */
  admits(peer: string): boolean;
  /** A member, not blocked here: may speak the members' protocols. */
  isMember(peer: string): boolean;
  /** Let in the strangers `door` names, until the returned function is called. */
  openDoor(door: Door): () => void;
  /** Refuse `peer` whatever its trust, for `ms` (default until unblocked); its connections close. */
  block(peer: string, ms?: number): void;
  unblock(peer: string): void;
  /** Apply to this libp2p node's connections from now on: keep members connected, cut off who is no longer admitted. */
  attach(libp2p: MeshLibp2p): void;
  /** Close connections of peers no longer admitted; keep members connected. Call after membership changed. */
  enforce(): void;
}

/** See {@link Admission}. */
export function createAdmission(options: AdmissionOptions): Admission {
  const blocked = new Map<string, ReturnType<typeof setTimeout> | undefined>();
  const doors = new Set<Door>();
  let libp2p: MeshLibp2p | undefined;

  const isMember = (peer: string): boolean => !blocked.has(peer) && options.members.isMember(peer);
  const admits = (peer: string): boolean => !blocked.has(peer) && (options.members.isMember(peer) || [...doors].some((door) => door(peer)));
  // libp2p redials a keep-alive peer that drops (a few times, backing off), so members stay connected.
  const keepAlive = (peer: PeerId): void => {
    if (libp2p === undefined || !isMember(peer.toString())) return;
    libp2p.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } }).catch((error: Error) => options.onError?.(error));
  };
  const enforce = (): void => {
    if (libp2p === undefined) return;
    for (const connection of libp2p.getConnections()) {
      if (admits(connection.remotePeer.toString())) keepAlive(connection.remotePeer);
      else void connection.close().catch(() => undefined);
    }
  };
  const unblock = (peer: string): void => {
    clearTimeout(blocked.get(peer));
    blocked.delete(peer);
  };

  return {
    admits,
    isMember,
    openDoor(door) {
      doors.add(door);
      return () => void doors.delete(door);
    },
    block(peer, ms) {
      clearTimeout(blocked.get(peer));
      blocked.set(peer, ms === undefined ? undefined : setTimeout(() => blocked.delete(peer), ms).unref());
      enforce();
    },
    unblock,
    attach(node) {
      libp2p = node;
      node.addEventListener("peer:connect", (event) => keepAlive(event.detail));
      enforce();
    },
    enforce,
  };
}
