import { z } from "zod";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";

/** Document sync over one long-lived stream per peer. */
export const SYNC_PROTOCOL = "/coderclaw/sync/1.0.0";
/** Wire version inside every sync message envelope. */
export const SYNC_VERSION = 1;
/** Largest sync frame; one Automerge sync message for one document must fit. */
export const MAX_SYNC_FRAME_BYTES = 8 * 1024 * 1024;

const documentId = z.string().min(3).max(512);
const prefix = z.string().min(1).max(64);
const head = z.string().regex(/^[0-9a-f]{64}$/);
const heads = z.array(head).max(1024);
const bucket = z.number().int().min(0).max(255);

/** Digest of everything one side holds under a prefix, one hex digest per bucket. */
export const summaryMessage = z.object({
  t: z.literal("summary"),
  prefix,
  count: z.number().int().min(0),
  buckets: z.array(z.string().regex(/^[0-9a-f]{64}$/)).length(256),
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

/** Automerge sync messages for many documents at once. */
export const docsMessage = z.object({
  t: z.literal("docs"),
  items: z.array(z.object({ id: documentId, msg: bytesSchema })).max(10_000),
});

/**
 * Changes that bring a document from `since` (heads the receiver is known to
 * hold, empty for a document it lacks) to `heads`, in Automerge save format.
 * The one-message path for a document only one side changed.
 */
export const patchMessage = z.object({
  t: z.literal("patch"),
  items: z.array(z.object({ id: documentId, since: heads, heads, changes: bytesSchema })).max(10_000),
});

/** Ask for a patch from `heads` (the sender's current heads, empty when it lacks the document). */
export const wantMessage = z.object({
  t: z.literal("want"),
  items: z.array(z.object({ id: documentId, heads })).max(10_000),
});

/** Any message of the sync protocol. */
export const syncMessage = z.discriminatedUnion("t", [summaryMessage, entriesMessage, docsMessage, patchMessage, wantMessage]);

/** See {@link syncMessage}. */
export type SyncMessage = z.infer<typeof syncMessage>;
export type SummaryMessage = z.infer<typeof summaryMessage>;
export type EntriesMessage = z.infer<typeof entriesMessage>;
export type DocsMessage = z.infer<typeof docsMessage>;
export type PatchMessage = z.infer<typeof patchMessage>;
export type WantMessage = z.infer<typeof wantMessage>;

/** The strict codec of the sync protocol. */
export function createSyncCodec(maxMessageBytes = MAX_SYNC_FRAME_BYTES): MessageCodec<SyncMessage> {
  return createMessageCodec({ version: SYNC_VERSION, schema: syncMessage, maxMessageBytes });
}
