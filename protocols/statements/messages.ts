import { z } from "zod";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";

/**
 * Replication of the mesh's signed items (statements and policy texts) between
 * members: a grow-only set, reconciled by comparing digests, then ids, and
 * sending what the other side lacks. Nothing in the protocol removes or
 * replaces an item.
 */
export const STATEMENTS_PROTOCOL = "/coderclaw/statements/1.0.0";
/** Wire version inside every message envelope. */
export const STATEMENTS_VERSION = 1;
/** Largest item: a signed statement is at most 4 KiB; a policy text at most 64 KiB. */
export const MAX_ITEM_BYTES = 64 * 1024;
/** Items in one `items` message. */
export const MAX_ITEMS_PER_MESSAGE = 256;
/** Ids in one `ids` message; a longer list spans several. */
export const MAX_IDS_PER_MESSAGE = 10_000;

const id = z.string().regex(/^[0-9a-f]{64}$/, "expected a hex SHA-256");

/** What one side holds: how many items, and the SHA-256 of their sorted ids. */
export const haveMessage = z.strictObject({ t: z.literal("have"), count: z.number().int().min(0), digest: id });

/** The ids one side holds, sorted, over as many messages as it takes; the last says so. */
export const idsMessage = z.strictObject({ t: z.literal("ids"), ids: z.array(id).max(MAX_IDS_PER_MESSAGE), last: z.boolean() });

/** Items the receiver lacks (as far as the sender knows). */
export const itemsMessage = z.strictObject({
  t: z.literal("items"),
  items: z
    .array(z.strictObject({ id, kind: z.enum(["statement", "text"]), bytes: bytesSchema.refine((b) => b.byteLength <= MAX_ITEM_BYTES, `item over ${MAX_ITEM_BYTES} bytes`) }))
    .max(MAX_ITEMS_PER_MESSAGE),
});

/** Any message of the statements protocol. */
export const statementsMessage = z.discriminatedUnion("t", [haveMessage, idsMessage, itemsMessage]);

/** See {@link statementsMessage}. */
export type StatementsMessage = z.infer<typeof statementsMessage>;
/** One item on the wire. */
export type WireItem = z.infer<typeof itemsMessage>["items"][number];

/** The strict codec of the statements protocol. */
export function createStatementsCodec(): MessageCodec<StatementsMessage> {
  return createMessageCodec({ version: STATEMENTS_VERSION, schema: statementsMessage, maxMessageBytes: 2 * 1024 * 1024 });
}
