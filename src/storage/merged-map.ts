import * as A from "@automerge/automerge";

/**
 * The entries of the map at root key `key` of a grow-only document, across every
 * copy of that map. Two nodes that each created the document made their own map
 * at `key`; once merged, Automerge shows one of them and keeps the other as a
 * conflict, so entries written to the hidden one would be lost to readers. For a
 * set that only grows, what the document holds is the union. Where both maps hold
 * an entry, the one Automerge shows comes first.
 */
export function mergedMapEntries(doc: A.Doc<unknown>, key: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const root = doc as Record<string, unknown>;
  const conflicts = A.getConflicts(doc, key);
  const maps = [root[key], ...(conflicts === undefined ? [] : Object.values(conflicts))];
  for (const map of maps) {
    if (typeof map !== "object" || map === null || map instanceof Uint8Array || Array.isArray(map)) continue;
    for (const [k, v] of Object.entries(map as Record<string, unknown>)) if (!out.has(k)) out.set(k, v);
  }
  return out;
}
