import { createHash } from "node:crypto";
import { canonicalDecode, canonicalEncode } from "../canonical.js";
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
  /** `cbor([signedBytes, signature])`. */
  bytes: Uint8Array;
}

/** Bytes as stored, split back into their signed part and signature. */
export interface DecodedAuditEntry extends EncodedAuditEntry {
  signed: Uint8Array;
  sig: Uint8Array;
}

const ENTRY_VERSION = 1;

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
  const bytes = canonicalEncode([signed, signer.sign(signed)]);
  return { entry: { author: signer.peerId, seq, prev, time, body, hash: hashEntryBytes(bytes) }, bytes };
}

/** Hex SHA-256 of stored entry bytes. */
export function hashEntryBytes(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Decodes stored entry bytes strictly; throws on anything malformed. Does not check the signature. */
export function decodeAuditEntry(bytes: Uint8Array): DecodedAuditEntry {
  const outer = canonicalDecode(bytes);
  if (!Array.isArray(outer) || outer.length !== 2 || !(outer[0] instanceof Uint8Array) || !(outer[1] instanceof Uint8Array)) {
    throw new TypeError("entry is not [signed, signature]");
  }
  const [signed, sig] = outer as [Uint8Array, Uint8Array];
  const inner = canonicalDecode(signed) as Record<string, unknown>;
  if (typeof inner !== "object" || inner === null) throw new TypeError("signed part is not a map");
  if (inner.v !== ENTRY_VERSION) throw new TypeError(`unknown entry version ${String(inner.v)}`);
  const { author, seq, prev, time } = inner;
  if (typeof author !== "string" || !Number.isSafeInteger(seq) || (seq as number) < 1 || typeof time !== "number") {
    throw new TypeError("entry header is malformed");
  }
  if (!(prev === null || (prev instanceof Uint8Array && prev.length === 32))) throw new TypeError("entry prev is malformed");
  const body = asBody(inner.body);
  const entry: AuditEntry = {
    author,
    seq: seq as number,
    prev: prev === null ? null : Buffer.from(prev).toString("hex"),
    time,
    body,
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
