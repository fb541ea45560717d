import { z } from "zod";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";

/**
 * Audit log replication between members: compare chain heads, pull what is
 * missing. Version 2 adds `tip`: a node tells members the chains that grew
 * here, instead of each member asking for every head every few seconds.
 */
export const AUDIT_PROTOCOL = "/coderclaw/audit/2.0.0";
/** Wire version inside every audit-protocol envelope. */
export const AUDIT_PROTOCOL_VERSION = 2;
/** Entries per answer; a longer gap is pulled in pages. */
export const AUDIT_PAGE = 500;

const rid = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const author = z.string().min(1).max(128);
const heads = z.array(z.strictObject({ author, seq: z.number().int().min(0) })).max(100_000);

/** Every message of the audit protocol, both directions. */
export const auditMessageSchema = z.discriminatedUnion("t", [
  z.strictObject({ t: z.literal("heads"), rid }),
  z.strictObject({ t: z.literal("heads-ans"), rid, heads }),
  z.strictObject({ t: z.literal("tip"), rid, heads }),
  z.strictObject({ t: z.literal("tip-ans"), rid }),
  z.strictObject({ t: z.literal("pull"), rid, author, after: z.number().int().min(0) }),
  z.strictObject({ t: z.literal("entries"), rid, entries: z.array(bytesSchema).max(AUDIT_PAGE) }),
  z.strictObject({ t: z.literal("err"), rid, message: z.string().max(1024) }),
]);

/** See {@link auditMessageSchema}. */
export type AuditMessage = z.infer<typeof auditMessageSchema>;

/** The strict codec of the audit protocol (a page of entries fits well within it). */
export function createAuditCodec(): MessageCodec<AuditMessage> {
  return createMessageCodec({ version: AUDIT_PROTOCOL_VERSION, schema: auditMessageSchema, maxMessageBytes: 4 * 1024 * 1024 });
}
