import { z } from "zod";
import { bytesSchema, createMessageCodec, type MessageCodec } from "../framing/codec.js";

/** Ask a connected member for its signed node record, for meshes too small for the DHT to answer. */
export const CAPS_PROTOCOL = "/coderclaw/caps/1.0.0";
/** Wire version inside every caps message envelope. */
export const CAPS_VERSION = 1;

/** Request or answer of the caps protocol; `n` pairs an answer with its request on a shared stream. */
export const capsMessage = z.discriminatedUnion("t", [
  z.object({ t: z.literal("get"), n: z.number().int().min(0) }),
  z.object({ t: z.literal("record"), n: z.number().int().min(0), record: bytesSchema }),
]);

/** See {@link capsMessage}. */
export type CapsMessage = z.infer<typeof capsMessage>;

/** The strict codec of the caps protocol; a node record is small, so frames are too. */
export function createCapsCodec(): MessageCodec<CapsMessage> {
  return createMessageCodec({ version: CAPS_VERSION, schema: capsMessage, maxMessageBytes: 80 * 1024 });
}
