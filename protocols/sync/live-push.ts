import { sameHeads, type DocumentChange } from "../../src/storage/document-store.js";
import { signedPatch, type PatchItem, type PeerSession } from "./peer-session.js";
import type { ReplicaAuthority } from "./replica-authority.js";

/** Options of {@link createLivePush}. */
export interface LivePushOptions {
  /** The open session with each peer, read at every push. */
  sessions: ReadonlyMap<string, PeerSession>;
  authority: ReplicaAuthority;
  /** Local changes are collected this long before one batched push. Default 15 ms. */
  debounceMs?: number;
}

/** Pushes stored changes to the sessions as they happen. */
export interface LivePush {
  /** A durable change of a replicated document (from the store's change feed). */
  changed(change: DocumentChange): void;
  /**
   * `peer` no longer syncs with `removed`: the changes of `peer`'s own
   * documents that were not announced to them (they were to come from `peer`
   * itself) in the last moments are announced to them now, in case they did not.
   */
  peersLost(peer: string, removed: readonly string[]): void;
  /** Drop what waits; nothing more is pushed. */
  stop(): void;
}

/** A document's changes since the last push, as one patch when they follow on from each other. */
interface PendingPush {
  /** The peer every one of these changes came from; undefined when any was local or from another peer. */
  from: string | undefined;
  /** Every one of these changes was made by this node. */
  local: boolean;
  since: string[];
  heads: string[];
  /** Undefined when the changes are sent from the stored document instead. */
  parts?: Uint8Array[];
  bytes: number;
}

/** Largest patch pushed live as the bytes stored; a bigger one is built from the stored document. */
const MAX_PATCH_BYTES = 1024 * 1024;

/** How long an announcement left out because the writer pushes to that peer itself is remembered. */
const SKIPPED_MS = 10_000;
/** Left-out announcements remembered per peer. */
const MAX_SKIPPED = 10_000;

/**
 * Live replication after the first reconciliation: changes are collected for
 * a short debounce. This node's own changes go as one signed patch per
 * document to every session (changes that do not follow on from each other
 * are sent from the stored document instead). A change received from a peer
 * is only announced (id, heads) to the other sessions, which ask for it if
 * they lack it, so each member receives it about once; and not even announced
 * to the peers its writer said it syncs with directly, when it came from the
 * writer itself, which pushes it to them. Only the writer's word about its own
 * documents is taken, so a member that lies about its peers delays nobody's
 * changes but its own.
 */
export function createLivePush(options: LivePushOptions): LivePush {
  const { sessions, authority } = options;
  const pending = new Map<string, PendingPush>();
  /** Per peer: announcements left out because the writer pushes to that peer itself. */
  const skipped = new Map<string, Map<string, { writer: string; heads: string[]; at: number }>>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const flush = (): void => {
    timer = undefined;
    const batch = [...pending];
    pending.clear();
    // With nobody to push to, signing would be wasted: a session that opens later reconciles by summary.
    if (sessions.size === 0) return;
    const now = Date.now();
    for (const [peer, left] of skipped) {
      for (const [id, s] of left) if (now - s.at > SKIPPED_MS) left.delete(id);
      if (left.size === 0 || !sessions.has(peer)) skipped.delete(peer);
    }
    const announced = announce(batch.filter(([, p]) => !p.local));
    // Each patch is built once, whatever the number of peers it goes to, and this node's own changes are
    // signed together: one signature for the batch.
    const contiguous = batch.filter(([, p]) => p.local && p.parts !== undefined);
    // A change made here is this node's own writing: it signs it without reading the document back.
    const signatures = authority.signaturesFor(contiguous.map(([id, p]) => ({ id, heads: p.heads, root: () => undefined, written: p.local })));
    const signed = new Map(contiguous.map(([id], i) => [id, signatures[i]]));
    const changed: Array<{ id: string; since: string[]; patch: PatchItem | undefined }> = [];
    for (const [id, p] of batch) {
      if (!p.local) continue;
      if (p.parts === undefined) {
        changed.push({ id, since: p.since, patch: undefined });
        continue;
      }
      const signature = signed.get(id);
      // Unsigned: a document this node neither writes nor holds a signature for (it is not sent).
      if (signature === undefined) continue;
      changed.push({ id, since: p.since, patch: signedPatch(id, p.since, p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts), signature) });
    }
    for (const [peer, session] of sessions) {
      const patches: PatchItem[] = [];
      const rebuilt: Array<{ id: string; since: string[] }> = [];
      for (const { id, since, patch } of changed) {
        if (patch === undefined) rebuilt.push({ id, since });
        else patches.push(patch);
      }
      if (patches.length > 0) void session.pushPatches(patches);
      if (rebuilt.length > 0) void session.push(rebuilt);
      const news = announced.get(peer);
      if (news !== undefined) void session.announce(news);
    }
  };

  /** The announcements of received changes, per peer. */
  const announce = (received: Array<[string, PendingPush]>): Map<string, Array<{ id: string; heads: string[] }>> => {
    const out = new Map<string, Array<{ id: string; heads: string[] }>>();
    for (const [id, p] of received) {
      // Only what this node can serve is announced: the writer's signature over exactly the heads it holds.
      const signature = authority.held(id);
      if (signature === undefined || !sameHeads(signature.heads, p.heads)) continue;
      const fromWriter = p.from !== undefined && p.from === signature.writer ? sessions.get(p.from) : undefined;
      for (const [peer, session] of sessions) {
        // The peer a change came from has it already.
        if (peer === p.from || session.peerHolds(id, p.heads)) continue;
        if (fromWriter?.neighbours.has(peer) === true) {
          const left = skipped.get(peer) ?? new Map<string, { writer: string; heads: string[]; at: number }>();
          if (left.size < MAX_SKIPPED) left.set(id, { writer: signature.writer, heads: p.heads, at: Date.now() });
          skipped.set(peer, left);
          continue;
        }
        const list = out.get(peer) ?? [];
        list.push({ id, heads: p.heads });
        out.set(peer, list);
      }
    }
    return out;
  };

  return {
    changed(change) {
      if (stopped) return;
      const from = change.origin === "remote" ? change.from : undefined;
      const p = pending.get(change.id);
      if (p === undefined) {
        pending.set(change.id, { from, local: change.origin === "local", since: change.before, heads: change.heads, parts: [change.changes], bytes: change.changes.byteLength });
      } else {
        if (p.from !== from) p.from = undefined;
        if (change.origin !== "local") p.local = false;
        // Changes that do not follow on from each other (or grow past one frame) are sent from the stored document.
        if (p.parts !== undefined && sameHeads(p.heads, change.before) && p.bytes + change.changes.byteLength <= MAX_PATCH_BYTES) {
          p.parts.push(change.changes);
          p.bytes += change.changes.byteLength;
        } else delete p.parts;
        p.heads = change.heads;
      }
      timer ??= setTimeout(flush, options.debounceMs ?? 15);
    },
    peersLost(peer, removed) {
      for (const lost of removed) {
        const left = skipped.get(lost);
        const session = sessions.get(lost);
        if (left === undefined || session === undefined) continue;
        const items: Array<{ id: string; heads: string[] }> = [];
        for (const [id, s] of left) {
          if (s.writer !== peer) continue;
          left.delete(id);
          if (Date.now() - s.at <= SKIPPED_MS) items.push({ id, heads: s.heads });
        }
        if (items.length > 0) void session.announce(items);
      }
    },
    stop() {
      stopped = true;
      skipped.clear();
      if (timer !== undefined) clearTimeout(timer);
      pending.clear();
    },
  };
}
