import { z } from "zod";
import { MAX_BLOB_BYTES, MAX_TREE_BYTES } from "../../src/workspace/blob-store.js";
import { DIGEST_PATTERN } from "../../src/workspace/manifest.js";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";
import { readDataMessage, writeDataMessage, type DataLimits } from "./data-frame.js";

/**
 * Blob exchange: members fetch a tree's manifest and the blobs it names from a
 * member that holds them. Version 2: a tree id names an index of manifest
 * pieces (src/workspace/manifest-pieces.ts), not a whole manifest, so a node
 * of version 1 could not read what it fetched; it now fails to open the
 * protocol instead. Version 3: whole blobs may come several to a `run`
 * message, which a node of version 2 would take for a malformed frame.
 */
export const BLOBS_PROTOCOL = "/coderclaw/blobs/3.0.0";
/** Wire version inside every blob-protocol envelope. */
export const BLOBS_PROTOCOL_VERSION = 3;
/** Bytes of a blob or manifest one `data` message carries at most: large enough that the cost per message is small beside the bytes. */
export const BLOB_CHUNK_BYTES = 256 * 1024;
/** Blobs one `run` carries at most: its digests then take about 36 KiB beside its bytes. */
export const MAX_RUN_BLOBS = 512;
/** Blobs one `get` names at most. */
export const MAX_ITEMS_PER_GET = 1024;
/** Largest window of one `get`, and largest grant of one `credit`. */
export const MAX_WINDOW_BYTES = 16 * 1024 * 1024;
/** A full chunk plus its envelope, or a `get` of {@link MAX_ITEMS_PER_GET} items. */
export const MAX_BLOBS_MESSAGE_BYTES = 320 * 1024;

/** A grant presented with a request is refused unread beyond this (one is about 250 bytes). */
export const MAX_GRANT_BYTES = 1024;

const rid = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const digest = z.string().regex(DIGEST_PATTERN, "expected 64 lowercase hex characters");
/** A grant signed by the tree's submitter, letting the asker read it from a member other than the submitter (node/workspaces/tree-grants.ts). */
const grant = bytesSchema.refine((b) => b.byteLength <= MAX_GRANT_BYTES, `a grant is at most ${MAX_GRANT_BYTES} bytes`).optional();

/** Every message of the blob protocol, both directions; `rid` pairs answers with requests on the shared stream. */
export const blobsMessageSchema = z.discriminatedUnion("t", [
  /** Ask for the manifest of `tree`: answered by `data` messages (d = the tree id) up to its size, then `end`. */
  z.strictObject({ t: z.literal("tree"), rid, tree: digest, grant }),
  /**
   * Ask for blobs of `tree`, each from its offset (what the asker already holds of it). The
   * server answers in the order asked: for each blob, `data` from `off` to its end or a
   * `miss`, then `end`. It sends at most `window` bytes of data beyond what the asker has
   * granted since with `credit`; when no credit comes for a while it may end early, and the
   * asker asks again for the rest.
   */
  z.strictObject({
    t: z.literal("get"),
    rid,
    tree: digest,
    items: z.array(z.strictObject({ d: digest, off: z.number().int().min(0).max(MAX_BLOB_BYTES) })).min(1).max(MAX_ITEMS_PER_GET),
    window: z.number().int().min(1).max(MAX_WINDOW_BYTES),
    grant,
  }),
  /** The asker took `bytes` more of the data of `get` `rid`: the server may send that many more. */
  z.strictObject({ t: z.literal("credit"), rid, bytes: z.number().int().min(1).max(MAX_WINDOW_BYTES) }),
  /** The asker gave up on `rid`. */
  z.strictObject({ t: z.literal("cancel"), rid }),
  /** Bytes `off` to `off + bytes.length` of blob (or manifest) `d`, which is `size` bytes long. */
  z.strictObject({
    t: z.literal("data"),
    rid,
    d: digest,
    off: z.number().int().min(0).max(MAX_TREE_BYTES),
    size: z.number().int().min(0).max(MAX_TREE_BYTES),
    bytes: bytesSchema.refine((b) => b.byteLength <= BLOB_CHUNK_BYTES, `a data message carries at most ${BLOB_CHUNK_BYTES} bytes`),
  }),
  /**
   * Whole blobs `ds`, next in the order asked for and each asked for from its
   * start, of `sizes` bytes, one after another in `bytes`: what a `data`
   * message per blob would say, without a message for each small blob.
   */
  z
    .strictObject({
      t: z.literal("run"),
      rid,
      ds: z.array(digest).min(1).max(MAX_RUN_BLOBS),
      sizes: z.array(z.number().int().min(0).max(BLOB_CHUNK_BYTES)).min(1).max(MAX_RUN_BLOBS),
      bytes: bytesSchema.refine((b) => b.byteLength <= BLOB_CHUNK_BYTES, `a run carries at most ${BLOB_CHUNK_BYTES} bytes`),
    })
    .refine((m) => m.sizes.length === m.ds.length, { error: "a run has one size per digest", path: ["sizes"] })
    .refine((m) => m.sizes.reduce((n, size) => n + size, 0) === m.bytes.byteLength, { error: "a run's sizes add up to its bytes", path: ["bytes"] }),
  /** The server holds no valid copy of blob `d` (asked for as part of a tree the asker may read). */
  z.strictObject({ t: z.literal("miss"), rid, d: digest }),
  z.strictObject({ t: z.literal("end"), rid }),
  z.strictObject({ t: z.literal("err"), rid, code: z.string().max(64), message: z.string().max(4096) }),
]);

/** See {@link blobsMessageSchema}. */
export type BlobsMessage = z.infer<typeof blobsMessageSchema>;

/** Whether the hand-written path can write `m`: anything else is left to the generic encoder, as before. */
function fitsDataFrame(m: Extract<BlobsMessage, { t: "data" }>): boolean {
  const count = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
  return m.bytes.byteLength <= BLOB_CHUNK_BYTES && count(m.rid) && count(m.off) && count(m.size) && DIGEST_PATTERN.test(m.d);
}

/**
 * The strict codec of the blob protocol. `data` messages, one per small blob
 * of a tree, take a hand-written path (data-frame.ts) that writes and accepts
 * the same canonical bytes; every other message, and a `data` frame in any
 * other shape, goes through the generic codec.
 */
export function createBlobsCodec(): MessageCodec<BlobsMessage> {
  const generic = createMessageCodec({ version: BLOBS_PROTOCOL_VERSION, schema: blobsMessageSchema, maxMessageBytes: MAX_BLOBS_MESSAGE_BYTES });
  const limits: DataLimits = { version: BLOBS_PROTOCOL_VERSION, maxOff: MAX_TREE_BYTES, maxBytes: BLOB_CHUNK_BYTES };
  return {
    version: generic.version,
    maxMessageBytes: generic.maxMessageBytes,
    encode: (m) => (m.t === "data" && fitsDataFrame(m) ? writeDataMessage(BLOBS_PROTOCOL_VERSION, m) : generic.encode(m)),
    decode: (bytes) => (bytes.byteLength <= MAX_BLOBS_MESSAGE_BYTES ? readDataMessage(bytes, limits) : undefined) ?? generic.decode(bytes),
  };
}
