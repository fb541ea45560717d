import * as A from "@automerge/automerge";

/** A plain value at a document's root: what records derived from documents read. */
export type RootScalar = string | number | boolean | null;

/**
 * Reads the plain values at a document's root, whatever form the document is
 * held in: undefined for a key that is absent or holds an object, bytes, a
 * counter or a timestamp.
 */
export type RootReader = (key: string) => RootScalar | undefined;

const SCALAR_TYPES = new Set(["str", "int", "uint", "f64", "boolean", "null"]);

/** The root reader of a held document, through its backend (right for raw-written documents too). */
export function docRootReader(doc: A.Doc<unknown>): RootReader {
  const backend = A.getBackend(doc);
  return (key) => {
    const typed = backend.getWithType("_root", key);
    if (typed === null || typed === undefined || !SCALAR_TYPES.has(typed[0])) return undefined;
    const value: unknown = typed[1];
    // Large integers come back as bigints; only those a number holds exactly are plain values.
    if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : undefined;
    return value as RootScalar;
  };
}
