import type { DocumentStore } from "../../src/storage/document-store.js";
import { mergedMapEntries } from "../../src/storage/merged-map.js";
import type { SetItem, StatementSet } from "./statement-set.js";

/** Where versions before the grow-only set kept the mesh's statements and policy texts (Automerge maps). */
const LEGACY_STATEMENTS_DOC = "mesh/statements";
const LEGACY_POLICY_TEXTS_DOC = "mesh/policy-texts";

/**
 * Carry a home's statements and policy texts from the documents earlier
 * versions kept them in into the set. Each item is checked like any other, so
 * whatever a member slipped into those editable maps is dropped here, and what
 * it deleted from them comes back from the members that still hold it. The
 * documents are read, never written or replicated again. Returns how many items
 * were added.
 */
export async function importLegacyStatements(store: Pick<DocumentStore, "get">, set: StatementSet): Promise<number> {
  const items: SetItem[] = [];
  const statements = await store.get<{ s: Record<string, Uint8Array> }>(LEGACY_STATEMENTS_DOC);
  if (statements !== undefined) {
    for (const [id, bytes] of mergedMapEntries(statements, "s")) if (bytes instanceof Uint8Array) items.push({ id, kind: "statement", bytes });
  }
  const texts = await store.get<{ t: Record<string, string> }>(LEGACY_POLICY_TEXTS_DOC);
  if (texts !== undefined) {
    for (const [id, text] of mergedMapEntries(texts, "t")) items.push({ id, kind: "text", bytes: Buffer.from(String(text), "utf8") });
  }
  if (items.length === 0) return 0;
  // Statements first: the genesis makes the others admissible.
  const { added } = await set.add(items.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "statement" ? -1 : 1)));
  return added.length;
}
