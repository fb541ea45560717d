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

/**
 * Live replication after the first reconciliation: changes are collected for
 * a short debounce, then each document's changes go as one signed patch to
 * every session but the peer they came from. Changes that do not follow on
 * from each other are sent from the stored document instead.
 */
export function createLivePush(options: LivePushOptions): LivePush {
  const { sessions, authority } = options;
  const pending = new Map<string, PendingPush>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const flush = (): void => {
    timer = undefined;
    const batch = [...pending];
    pending.clear();
    // With nobody to push to, signing would be wasted: a session that opens later reconciles by summary.
    if (sessions.size === 0) return;
    // Each patch is built once, whatever the number of peers it goes to, and this node's own changes are
    // signed together: one signature for the batch.
    const contiguous = batch.filter(([, p]) => p.parts !== undefined);
    // A change made here is this node's own writing: it signs it without reading the document back.
    const signatures = authority.signaturesFor(contiguous.map(([id, p]) => ({ id, heads: p.heads, root: () => undefined, written: p.local })));
    const signed = new Map(contiguous.map(([id], i) => [id, signatures[i]]));
    const changed: Array<{ id: string; from: string | undefined; since: string[]; patch: PatchItem | undefined }> = [];
    for (const [id, p] of batch) {
      if (p.parts === undefined) {
        changed.push({ id, from: p.from, since: p.since, patch: undefined });
        continue;
      }
      const signature = signed.get(id);
      // Unsigned: a document this node neither writes nor holds a signature for (it is not sent).
      if (signature === undefined) continue;
      changed.push({ id, from: p.from, since: p.since, patch: signedPatch(id, p.since, p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts), signature) });
    }
    for (const [peer, session] of sessions) {
      const patches: PatchItem[] = [];
      const rebuilt: Array<{ id: string; since: string[] }> = [];
      for (const { id, from, since, patch } of changed) {
        // The peer a change came from has it already; pushing it back would only start another exchange.
        if (from === peer) continue;
        if (patch === undefined) rebuilt.push({ id, since });
        else patches.push(patch);
      }
      if (patches.length > 0) void session.pushPatches(patches);
      if (rebuilt.length > 0) void session.push(rebuilt);
    }
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
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      pending.clear();
    },
  };
}
