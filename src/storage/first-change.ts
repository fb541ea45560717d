import { createHash } from "node:crypto";
import * as A from "@automerge/automerge";
import type { RootListReader, RootReader, RootScalar } from "./root-reader.js";

/** A document given as its first and only change; see {@link readFirstChange}. */
export interface FirstChange {
  /** The document's heads: the change's hash. */
  heads: string[];
  root: RootReader;
  /** The plain values of lists made at the root by this change. */
  lists: RootListReader;
  /** The change's actor. */
  actor: string;
}

const MAGIC = [0x85, 0x6f, 0x4a, 0x83];
const CHANGE_CHUNK = 1;
const ALLOWED = new Set(["makeMap", "makeList", "makeText", "set"]);

/** An operation of a change encoded with `A.encodeChange`. */
export type ChangeOp = Parameters<typeof A.encodeChange>[0]["ops"][number];
/** A list insertion, which the low-level change format names by element rather than key. */
export type InsertOp = Omit<ChangeOp, "key"> & { elemId: string; insert: true };

/**
 * Change timestamps in seconds, as `A.change` stamps them, so raw and proxied
 * changes carry the same metadata.
 */
export const changeTime = (): number => Math.floor(Date.now() / 1000);

/**
 * A new document's first and only change, encoded from its operations by
 * `actor` without building the document (creating and saving one costs
 * several times more); such bytes are what {@link readFirstChange} reads.
 */
export function encodeFirstChange(actor: string, ops: ReadonlyArray<ChangeOp | InsertOp>): Uint8Array {
  return A.encodeChange({ actor, author: null, seq: 1, startOp: 1, time: changeTime(), message: null, deps: [], ops: ops as ChangeOp[] });
}

/**
 * The SHA-256 of an Automerge change chunk after its magic bytes and checksum:
 * the change's hash (a document's head), whose first four bytes are the checksum.
 */
export function changeChunkHash(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes.subarray(8)).digest();
}

/**
 * Reads bytes that hold a whole document as one Automerge change chunk needing
 * nothing else: a first change (no dependencies, seq 1, first op 1) whose every
 * operation creates a value, at the root or in an object the change itself made,
 * replacing nothing and setting no map key twice. Such a change applies to an
 * empty document whatever it holds, so a store may keep the bytes as they came
 * after this check, which costs a fifth of loading them into Automerge.
 *
 * Undefined for anything else (several chunks, a saved document, later changes,
 * operations on objects made elsewhere, deletions, marks, a bad checksum): the
 * caller then loads the bytes into Automerge, which decides.
 */
export function readFirstChange(bytes: Uint8Array): FirstChange | undefined {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b) || bytes[8] !== CHANGE_CHUNK) return undefined;
  const hash = changeChunkHash(bytes);
  // Automerge's decoder does not check the checksum; loading does.
  if (hash[0] !== bytes[4] || hash[1] !== bytes[5] || hash[2] !== bytes[6] || hash[3] !== bytes[7]) return undefined;
  let change: A.DecodedChange;
  try {
    change = A.decodeChange(bytes);
  } catch {
    return undefined;
  }
  const head = hash.toString("hex");
  if (change.hash !== head || change.deps.length !== 0 || change.seq !== 1 || change.startOp !== 1) return undefined;
  const maps = new Set<string>(["_root"]);
  /** Per sequence made in this change: the ids of elements inserted into it so far. */
  const sequences = new Map<string, Set<string>>();
  const setKeys = new Set<string>();
  const root = new Map<string, RootScalar | undefined>();
  /** Lists made at the root, by key: their object id, and the values inserted in order after each element. */
  const rootLists = new Map<string, string>();
  const listValues = new Map<string, Array<{ id: string; after: string; value: RootScalar | undefined }>>();
  for (const [i, op] of (change.ops as unknown as DecodedOp[]).entries()) {
    if (!ALLOWED.has(op.action) || op.pred.length !== 0) return undefined;
    const id = `${change.startOp + i}@${change.actor}`;
    const elements = sequences.get(op.obj);
    if (maps.has(op.obj)) {
      if (typeof op.key !== "string" || op.insert === true || op.elemId !== undefined) return undefined;
      const slot = `${op.obj}\u0000${op.key}`;
      if (setKeys.has(slot)) return undefined;
      setKeys.add(slot);
      if (op.obj === "_root") {
        root.set(op.key, op.action === "set" ? scalarOf(op) : undefined);
        if (op.action === "makeList") rootLists.set(op.key, id);
      }
    } else if (elements !== undefined) {
      if (op.insert !== true || typeof op.elemId !== "string" || (op.elemId !== "_head" && !elements.has(op.elemId))) return undefined;
      elements.add(id);
      let values = listValues.get(op.obj);
      if (values === undefined) listValues.set(op.obj, (values = []));
      values.push({ id, after: op.elemId, value: op.action === "set" ? scalarOf(op) : undefined });
    } else {
      return undefined;
    }
    if (op.action === "makeMap") maps.add(id);
    else if (op.action === "makeList" || op.action === "makeText") sequences.set(id, new Set());
  }
  const lists: RootListReader = (key) => {
    const obj = rootLists.get(key);
    if (obj === undefined) return undefined;
    return listOrder(listValues.get(obj) ?? []);
  };
  return { heads: [head], root: (key) => root.get(key), lists, actor: change.actor };
}

/**
 * The values of a list built by one change, in list order. Each element was
 * inserted after another (or at the head); a later insert after the same element
 * goes before the earlier ones, as in Automerge's RGA.
 */
function listOrder(inserts: Array<{ id: string; after: string; value: RootScalar | undefined }>): Array<RootScalar | undefined> {
  const children = new Map<string, Array<{ id: string; value: RootScalar | undefined }>>();
  for (const e of inserts) {
    const list = children.get(e.after) ?? [];
    list.unshift({ id: e.id, value: e.value });
    children.set(e.after, list);
  }
  const out: Array<RootScalar | undefined> = [];
  const stack = [...(children.get("_head") ?? [])].reverse();
  while (stack.length > 0) {
    const next = stack.pop()!;
    out.push(next.value);
    for (const child of [...(children.get(next.id) ?? [])].reverse()) stack.push(child);
  }
  return out;
}

/** An operation as `A.decodeChange` gives it: its declared type leaves out list positions. */
interface DecodedOp {
  action: string;
  obj: string;
  key?: unknown;
  elemId?: unknown;
  insert?: unknown;
  value?: unknown;
  datatype?: unknown;
  pred: unknown[];
}

/** The value of a `set`, as a backend reads it back: plain values only. */
function scalarOf(op: DecodedOp): RootScalar | undefined {
  const { value, datatype } = op;
  if (datatype === "int" || datatype === "uint") return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined;
  if (datatype === "float64") return typeof value === "number" ? value : undefined;
  if (datatype !== undefined) return undefined;
  if (typeof value === "string" || typeof value === "boolean" || value === null) return value;
  return undefined;
}
