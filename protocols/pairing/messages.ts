import { z } from "zod";
import { deviceIdSchema, meshIdSchema } from "../../identity/index.js";

/** Protocol id the mesh binds the pairing handshake to. */
export const PAIRING_PROTOCOL = "/coderclaw/pairing/1.0.0";

// Bytes travel as unpadded base64url so messages survive JSON and CBOR alike.
const b64 = (bytes: number) => z.string().regex(new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`));
/** A base64url signed statement (at most 4 KiB of CBOR). */
const statementText = z.string().regex(/^[A-Za-z0-9_-]{1,5462}$/);

/**
 * Most statements a welcome may carry: a mesh of 1,000 devices and 10,000
 * certificates fits. The stream binding should still cap one message
 * (about 16 MiB covers this limit in JSON).
 */
export const MAX_WELCOME_STATEMENTS = 20_000;

/** Joiner -> inviter: which invite, who I am, my nonce. */
export const helloSchema = z.strictObject({
  type: z.literal("hello"),
  v: z.literal(1),
  inviteId: b64(8),
  meshId: meshIdSchema,
  joiner: deviceIdSchema,
  nonce: b64(32),
});

/** Inviter -> joiner: who I am, my nonce. */
export const challengeSchema = z.strictObject({
  type: z.literal("challenge"),
  inviter: deviceIdSchema,
  nonce: b64(32),
});

/** Joiner -> inviter: HMAC proof of the secret and a signature by the joiner's device key. */
export const proofSchema = z.strictObject({
  type: z.literal("proof"),
  mac: b64(32),
  sig: b64(64),
});

/** Inviter -> joiner: the inviter's own proof, the joiner's certificate and the mesh statements. */
export const welcomeSchema = z.strictObject({
  type: z.literal("welcome"),
  mac: b64(32),
  certificate: statementText,
  statements: z.array(statementText).max(MAX_WELCOME_STATEMENTS),
});

/** Either side: the handshake is over, and why. */
export const errorSchema = z.strictObject({
  type: z.literal("error"),
  code: z.string().max(64),
  message: z.string().max(512),
});

/** Messages the joiner receives. */
export const toJoinerSchema = z.discriminatedUnion("type", [challengeSchema, welcomeSchema, errorSchema]);
/** Messages the inviter receives. */
export const toInviterSchema = z.discriminatedUnion("type", [helloSchema, proofSchema, errorSchema]);

/** Joiner -> inviter hello. */
export type HelloMessage = z.infer<typeof helloSchema>;
/** Inviter -> joiner challenge. */
export type ChallengeMessage = z.infer<typeof challengeSchema>;
/** Joiner -> inviter proof. */
export type ProofMessage = z.infer<typeof proofSchema>;
/** Inviter -> joiner welcome. */
export type WelcomeMessage = z.infer<typeof welcomeSchema>;
/** Error message of either side. */
export type ErrorMessage = z.infer<typeof errorSchema>;
