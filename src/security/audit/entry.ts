import { createHash } from "node:crypto";
import { decode } from "cborg";
import { canonicalEncode } from "../canonical.js";
import type { Signer } from "../keys.js";

/** Outcome recorded for an audited action. */
export type AuditResult = "allowed" | "denied" | "error";

/** What happened; the part of an entry that callers write. */
export interface AuditBody {
  /** Dotted verb, e.g. `task.submit`, `skill.execute`, `session.create`, `grant.add`. */
  action: string;
  userId: string;
  sessionId?: string;
  deviceId?: string;
  /** What was acted on: a task id, agent id, skill id, config key. */
  resource?: string;
  result: AuditResult;
  reason?: string;
}

/** One entry of a node's log, decoded. */
export interface AuditEntry {
  /** Id of the node whose log this is, and whose key signed it. */
  author: string;
  /** Position in the author's log, from 1, without gaps. */
  seq: number;
  /** Hex hash of the previous entry, null for seq 1. */
  prev: string | null;
  /** Milliseconds since the epoch, by the author's clock. */
  time: number;
  body: AuditBody;
  /** Hex SHA-256 of the stored bytes (signature included): the entry's id, and the next entry's `prev`. */
  hash: string;
}

/** An entry plus the bytes it travels and is stored as. */
export interface EncodedAuditEntry {
  entry: AuditEntry;
  /** The signed bytes (canonical CBOR) followed by the 64-byte signature. */
  bytes: Uint8Array;
}

/** Bytes as stored, split back into their signed part and signature. */
export interface DecodedAuditEntry extends EncodedAuditEntry {
  signed: Uint8Array;
  sig: Uint8Array;
}

const ENTRY_VERSION = 1;
const SIG_LENGTH = 64;
/** Largest stored entry accepted; bounds the work a hostile entry can cause. */
export const MAX_ENTRY_BYTES = 16 * 1024;

/**
 * Builds and signs the next entry of `signer`'s log. The signature covers the
 * canonical encoding of everything but itself; the hash covers the stored bytes, so
 * a different signature makes a different entry (and a fork if the seq is reused).
 */
export function signAuditEntry(signer: Signer, seq: number, prev: string | null, time: number, body: AuditBody): EncodedAuditEntry {
  const signed = canonicalEncode({
    v: ENTRY_VERSION,
    author: signer.peerId,
    seq,
    prev: prev === null ? null : Buffer.from(prev, "hex"),
    time,
    body: cleanBody(body),
  });
  const sig = signer.sign(signed);
  const bytes = new Uint8Array(signed.length + SIG_LENGTH);
  bytes.set(signed);
  bytes.set(sig, signed.length);
  return { entry: { author: signer.peerId, seq, prev, time, body, hash: hashEntryBytes(bytes) }, bytes };
}

/** Hex SHA-256 of stored entry bytes. */
export function hashEntryBytes(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Decodes stored entry bytes; throws on anything malformed. Does not check the
 * signature. The signed part is decoded without identity/'s canonical re-encoding
 * check because nothing here depends on canonical form: the signature covers the
 * exact signed bytes and the hash the exact stored bytes, so any other encoding of
 * the same values is simply a different, unsigned entry. Skipping that check keeps
 * verification close to the cost of the signature check alone.
 */
export function decodeAuditEntry(bytes: Uint8Array): DecodedAuditEntry {
  if (bytes.length > MAX_ENTRY_BYTES) throw new RangeError(`entry exceeds ${MAX_ENTRY_BYTES} bytes`);
  if (bytes.length <= SIG_LENGTH) throw new TypeError("entry is shorter than a signature");
  const signed = bytes.subarray(0, bytes.length - SIG_LENGTH);
  const sig = bytes.subarray(bytes.length - SIG_LENGTH);
  // Strict: one value per key, definite lengths only; nesting deep enough to exhaust the stack throws a RangeError, caught by callers like any malformed entry.
  const inner = decode(signed, { strict: true, rejectDuplicateMapKeys: true, allowIndefinite: false, allowUndefined: false, useMaps: false }) as Record<string, unknown>;
  if (typeof inner !== "object" || inner === null || Array.isArray(inner)) throw new TypeError("signed part is not a map");
  if (inner.v !== ENTRY_VERSION) throw new TypeError(`unknown entry version ${String(inner.v)}`);
  const { author, seq, prev, time } = inner;
  if (typeof author !== "string" || !Number.isSafeInteger(seq) || (seq as number) < 1 || typeof time !== "number") {
    throw new TypeError("entry header is malformed");
  }
  if (!(prev === null || (prev instanceof Uint8Array && prev.length === 32))) throw new TypeError("entry prev is malformed");
  const entry: AuditEntry = {
    author,
    seq: seq as number,
    prev: prev === null ? null : Buffer.from(prev.buffer, prev.byteOffset, prev.byteLength).toString("hex"),
    time,
    body: asBody(inner.body),
    hash: hashEntryBytes(bytes),
  };
  return { entry, bytes, signed, sig };
}

function cleanBody(body: AuditBody): AuditBody {
  const out: AuditBody = { action: body.action, userId: body.userId, result: body.result };
  if (body.sessionId !== undefined) out.sessionId = body.sessionId;
  if (body.deviceId !== undefined) out.deviceId = body.deviceId;
  if (body.resource !== undefined) out.resource = body.resource;
  if (body.reason !== undefined) out.reason = body.reason;
  return out;
}

const RESULTS: ReadonlySet<string> = new Set(["allowed", "denied", "error"]);
const OPTIONAL = ["sessionId", "deviceId", "resource", "reason"] as const;

function asBody(value: unknown): AuditBody {
  if (typeof value !== "object" || value === null) throw new TypeError("entry body is not a map");
  const v = value as Record<string, unknown>;
  if (typeof v.action !== "string" || typeof v.userId !== "string" || typeof v.result !== "string" || !RESULTS.has(v.result)) {
    throw new TypeError("entry body is malformed");
  }
  const body: AuditBody = { action: v.action, userId: v.userId, result: v.result as AuditBody["result"] };
  for (const key of OPTIONAL) {
    const field = v[key];
    if (field === undefined) continue;
    if (typeof field !== "string") throw new TypeError(`entry body ${key} is malformed`);
    body[key] = field;
  }
  return body;
}
