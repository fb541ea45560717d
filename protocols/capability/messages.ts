import { z } from "zod";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";

/**
 * Ask a connected member for its signed node record, once (`get`) or as it
 * changes (`watch`, until `unwatch`). Version 2 added watching, so a member's
 * offer and load are known without asking at each lookup.
 */
export const CAPS_PROTOCOL = "/coderclaw/caps/2.0.0";
/** Wire version inside every caps message envelope. */
export const CAPS_VERSION = 2;

const n = z.number().int().min(0);

/** Request or answer of the caps protocol; `n` pairs an answer with its request on a shared stream. */
export const capsMessage = z.discriminatedUnion("t", [
  z.object({ t: z.literal("get"), n }),
  /** Answered at once with the record, then again with each new record the member signs. */
  z.object({ t: z.literal("watch"), n }),
  z.object({ t: z.literal("unwatch"), n }),
  z.object({ t: z.literal("record"), n, record: bytesSchema }),
]);

/** See {@link capsMessage}. */
export type CapsMessage = z.infer<typeof capsMessage>;

/** The strict codec of the caps protocol; a node record is small, so frames are too. */
export function createCapsCodec(): MessageCodec<CapsMessage> {
  return createMessageCodec({ version: CAPS_VERSION, schema: capsMessage, maxMessageBytes: 80 * 1024 });
}
