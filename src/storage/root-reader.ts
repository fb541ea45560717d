import * as A from "@automerge/automerge";

/** A plain value at a document's root: what records derived from documents read. */
export type RootScalar = string | number | boolean | null;

/**
 * Reads the plain values at a document's root, whatever form the document is
 * held in: undefined for a key that is absent or holds an object, bytes, a
 * counter or a timestamp.
 */
export type RootReader = (key: string) => RootScalar | undefined;

/**
 * Reads the plain values of a list at a document's root, in order: undefined
 * when the key is absent or holds no list, and undefined in place of an element
 * that is not a plain value.
 */
export type RootListReader = (key: string) => Array<RootScalar | undefined> | undefined;

const SCALAR_TYPES = new Set(["str", "int", "uint", "f64", "boolean", "null"]);

function scalar(typed: [string, unknown] | null | undefined): RootScalar | undefined {
  if (typed === null || typed === undefined || !SCALAR_TYPES.has(typed[0])) return undefined;
  const value: unknown = typed[1];
  // Large integers come back as bigints; only those a number holds exactly are plain values.
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : undefined;
  return value as RootScalar;
}

/** The root list reader of a held document, through its backend. */
export function docRootListReader(doc: A.Doc<unknown>): RootListReader {
  const backend = A.getBackend(doc);
  return (key) => {
    const typed = backend.getWithType("_root", key) as [string, unknown] | null | undefined;
    if (typed === null || typed === undefined || typed[0] !== "list" || typeof typed[1] !== "string") return undefined;
    const obj = typed[1];
    const out: Array<RootScalar | undefined> = [];
    for (let i = 0; i < backend.length(obj); i++) out.push(scalar(backend.getWithType(obj, i)));
    return out;
  };
}

/** The root reader of a held document, through its backend (right for raw-written documents too). */
export function docRootReader(doc: A.Doc<unknown>): RootReader {
  const backend = A.getBackend(doc);
  return (key) => scalar(backend.getWithType("_root", key));
}
