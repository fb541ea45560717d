import { z } from "zod";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";
import { MAX_BATCH } from "./heads-signature.js";

/**
 * Document sync over one long-lived stream per peer. Version 2: every patch
 * carries its writer's signature over the heads it leads to, and Automerge's
 * own sync exchange is gone (a document has one writer, so two sides never
 * both change one). Version 3: a relayed change is announced (`have`) and sent
 * on `want`, and each side tells the other which peers it syncs with directly
 * (`peers`), so a change reaches each member about once; and a reconnecting
 * side asks for what changed since the position of the other's change log it
 * last reconciled to (`since`, answered by `changed`), comparing whole
 * summaries only when it has no such position. Version 4: a patch may leave
 * out texts the receiver itself sent the sender (`refs`), `peers` goes whole
 * once and then as changes, and an empty summary bucket is `""`; a version 3
 * node would misread each, so the envelope number changes.
 */
export const SYNC_PROTOCOL = "/coderclaw/sync/3.0.0";
/** Wire version inside every sync message envelope. */
export const SYNC_VERSION = 4;
/** Most peers one `peers` message names. */
export const MAX_SYNC_NEIGHBOURS = 1024;
/** Largest sync frame; one document's patch must fit. */
export const MAX_SYNC_FRAME_BYTES = 8 * 1024 * 1024;

const documentId = z.string().min(3).max(512);
const prefix = z.string().min(1).max(64);
const head = z.string().regex(/^[0-9a-f]{64}$/);
const heads = z.array(head).max(1024);
const bucket = z.number().int().min(0).max(255);
const deviceId = z.string().min(1).max(128);
const signature = bytesSchema.refine((b) => b.byteLength === 64, "expected a 64-byte signature");
const hash = bytesSchema.refine((b) => b.byteLength === 32, "expected a 32-byte hash");

/**
 * Digest of everything one side holds under a prefix, one hex digest per
 * bucket; `""` for a bucket that holds nothing (a new mesh's summaries are
 * mostly empty buckets, and every pair of members exchanges them as it forms).
 */
export const summaryMessage = z.object({
  t: z.literal("summary"),
  prefix,
  count: z.number().int().min(0),
  buckets: z.array(z.union([z.literal(""), z.string().regex(/^[0-9a-f]{64}$/)])).length(256),
});

/**
 * The (id, heads) pairs the sender holds in `buckets` of `prefix`. A long list
 * spans several frames; the receiver compares once `last` arrives.
 */
export const entriesMessage = z.object({
  t: z.literal("entries"),
  prefix,
  buckets: z.array(bucket).max(256),
  entries: z.array(z.object({ id: documentId, heads })).max(20_000),
  last: z.boolean(),
});

/** Most texts one patch item leaves out (see protocols/sync/echo-texts.ts). */
export const MAX_ECHO_REFS = 4096;

/** A text left out of a patch item's changes because the receiver sent it to the sender: `n` bytes at `at` of the changes rebuilt, SHA-256 `h`. */
const echoRef = z.object({ at: z.number().int().min(0).max(MAX_SYNC_FRAME_BYTES), n: z.number().int().min(1).max(MAX_SYNC_FRAME_BYTES), h: hash });

/**
 * Changes that bring a document from `since` (heads the receiver is known to
 * hold, empty for a document it lacks) to `heads`, in Automerge save format,
 * with the document's writer `w` and its signature over `heads`: `sig` over the
 * root of a batch of `n` documents, this one at position `at`, with the sibling
 * hashes `proof` (see protocols/sync/heads-signature.ts). A relay forwards the
 * writer's signature as it received it. With `refs`, `changes` lack texts the
 * receiver itself sent the sender, which it puts back before reading them.
 */
export const patchMessage = z.object({
  t: z.literal("patch"),
  items: z
    .array(
      z.object({
        id: documentId,
        since: heads,
        heads,
        changes: bytesSchema,
        w: deviceId,
        sig: signature,
        at: z.number().int().min(0),
        n: z.number().int().min(1).max(MAX_BATCH),
        proof: z.array(hash).max(21),
        refs: z.array(echoRef).min(1).max(MAX_ECHO_REFS).optional(),
      }),
    )
    .max(10_000),
});

/** Ask for a patch from `heads` (the sender's current heads, empty when it lacks the document). */
export const wantMessage = z.object({
  t: z.literal("want"),
  items: z.array(z.object({ id: documentId, heads })).max(10_000),
});

/** The sender holds these documents at these heads: a peer that lacks them answers with a `want`. */
export const haveMessage = z.object({
  t: z.literal("have"),
  items: z.array(z.object({ id: documentId, heads: heads.min(1) })).max(10_000),
});

/**
 * The peers the sender has an open sync session with, sent when a session
 * starts and whenever that set changes. A writer pushes its own changes to
 * every one of them, so a relay need not announce that writer's changes to them.
 */
export const peersMessage = z.object({
  t: z.literal("peers"),
  peers: z.array(deviceId).max(MAX_SYNC_NEIGHBOURS),
  /**
   * Set on every message after a session's first: `peers` are those added
   * since the last message, `gone` those dropped. A list resent whole on each
   * change cost every member a list of every member per join, to every member.
   */
  delta: z.literal(true).optional(),
  gone: z.array(deviceId).max(MAX_SYNC_NEIGHBOURS).optional(),
});

const logEpoch = z.string().regex(/^[0-9a-f]{1,64}$/);
const logSeq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * Sent when a session opens: what changed in the receiver's store after
 * position `seq` of its change log of `epoch`, the position the sender last
 * reconciled to? No epoch: the sender has no position of the receiver's log.
 */
export const sinceMessage = z.object({
  t: z.literal("since"),
  epoch: logEpoch.optional(),
  seq: logSeq,
});

/**
 * The answer to `since`: the documents changed after that position, with
 * their heads now (several frames, the last flagged), reaching position
 * `upto` of log `epoch`. With `reset`, the position asked is not of this log:
 * the asker compares summaries, then holds position `upto`.
 */
export const changedMessage = z.object({
  t: z.literal("changed"),
  epoch: logEpoch,
  upto: logSeq,
  reset: z.boolean(),
  items: z.array(z.object({ id: documentId, heads })).max(10_000),
  last: z.boolean(),
});

/** Any message of the sync protocol. */
export const syncMessage = z.discriminatedUnion("t", [summaryMessage, entriesMessage, patchMessage, wantMessage, haveMessage, peersMessage, sinceMessage, changedMessage]);

/** See {@link syncMessage}. */
export type SyncMessage = z.infer<typeof syncMessage>;
export type SummaryMessage = z.infer<typeof summaryMessage>;
export type EntriesMessage = z.infer<typeof entriesMessage>;
export type PatchMessage = z.infer<typeof patchMessage>;
export type WantMessage = z.infer<typeof wantMessage>;
export type HaveMessage = z.infer<typeof haveMessage>;
export type PeersMessage = z.infer<typeof peersMessage>;
export type SinceMessage = z.infer<typeof sinceMessage>;
export type ChangedMessage = z.infer<typeof changedMessage>;

/** The strict codec of the sync protocol. */
export function createSyncCodec(maxMessageBytes = MAX_SYNC_FRAME_BYTES): MessageCodec<SyncMessage> {
  return createMessageCodec({ version: SYNC_VERSION, schema: syncMessage, maxMessageBytes });
}
