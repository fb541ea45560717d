import { z } from "zod";
import { concatBytes, utf8 } from "../../identity/bytes.js";
import { decodeCanonical, encodeCanonical } from "../../identity/canonical.js";
import { DEVICE_ID_PATTERN, publicKeyOfDeviceId } from "../../identity/device-id.js";
import { ed25519 } from "../../identity/ed25519.js";
import type { StatementSigner } from "../../identity/statement.js";
import { MAX_GRANT_BYTES } from "../../protocols/blobs/messages.js";

// Keeps a grant's signature from ever being valid as a statement, a submission or anything else signed.
const DOMAIN = utf8("coderclaw-tree-grant-v1\0");

const deviceId = z.string().regex(DEVICE_ID_PATTERN, "expected a device id");
const bodySchema = z.strictObject({
  v: z.literal(1),
  /** The mesh it was signed in: a grant never crosses from one mesh to another. */
  mesh: z.string().max(128),
  /** The tree (a submission's snapshot or a task's result) the grantee may read. */
  tree: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex characters"),
  /** The device that may read it: the holder compares it with the authenticated peer of the stream. */
  grantee: deviceId,
  /** Unix ms after which it is refused. */
  expires: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** The signer: a holder honours only the submitter of the task the tree belongs to. */
  issuer: deviceId,
});
const envelopeSchema = bodySchema.extend({ sig: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength === 64, "expected a 64-byte signature") });

/** A decoded grant whose signature verified. */
export type TreeGrant = z.infer<typeof bodySchema>;

/** What the holder knows when it judges a grant presented by `peer` for `tree`. */
export interface GrantContext {
  peer: string;
  tree: string;
  /** The device whose submission the tree belongs to (the only device whose grants count). */
  owner: string;
  mesh: string;
  now: number;
  isRevoked(deviceId: string): boolean;
}

/**
 * Signs a grant: `grantee` may read `tree` from any member that holds it, until
 * `expires`. Grants are not secret (a holder serves only the stream whose
 * authenticated peer is the grantee), so they can travel in the clear.
 */
export function signTreeGrant(signer: StatementSigner, grant: Omit<TreeGrant, "v" | "issuer">): Uint8Array {
  const body = bodySchema.parse({ v: 1, ...grant, issuer: signer.peerId });
  return encodeCanonical({ ...body, sig: signer.sign(concatBytes(DOMAIN, encodeCanonical(body))) });
}

/** Decodes and verifies a grant; throws an Error saying what is wrong with it. */
export function readTreeGrant(bytes: Uint8Array): TreeGrant {
  if (bytes.byteLength > MAX_GRANT_BYTES) throw new Error(`a grant of ${bytes.byteLength} bytes is over the limit of ${MAX_GRANT_BYTES}`);
  let value: unknown;
  try {
    value = decodeCanonical(bytes, { maxBytes: MAX_GRANT_BYTES, maxDepth: 2 });
  } catch (error) {
    throw new Error(`a malformed grant: ${(error as Error).message}`);
  }
  const parsed = envelopeSchema.safeParse(value);
  if (!parsed.success) throw new Error(`a malformed grant: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(grant)"}: ${i.message}`).join("; ")}`);
  const { sig, ...body } = parsed.data;
  const key = publicKeyOfDeviceId(body.issuer);
  if (key === undefined || !ed25519.verify(sig, concatBytes(DOMAIN, encodeCanonical(body)), key)) throw new Error(`a grant whose signature does not verify as ${body.issuer}'s`);
  return body;
}

/** Why the grant `bytes` does not let `context.peer` read `context.tree`, or undefined when it does. */
export function grantRefusal(bytes: Uint8Array | undefined, context: GrantContext): string | undefined {
  if (bytes === undefined) return "no grant";
  let grant: TreeGrant;
  try {
    grant = readTreeGrant(bytes);
  } catch (error) {
    return (error as Error).message;
  }
  if (grant.issuer !== context.owner) return `a grant signed by ${grant.issuer}, not by the tree's submitter ${context.owner}`;
  if (context.isRevoked(grant.issuer)) return `a grant signed by ${grant.issuer}, which is revoked`;
  if (grant.mesh !== context.mesh) return `a grant for mesh ${grant.mesh || "(none)"}, not this one`;
  if (grant.tree !== context.tree) return `a grant for tree ${grant.tree}, not ${context.tree}`;
  if (grant.grantee !== context.peer) return `a grant for ${grant.grantee}, presented by ${context.peer}`;
  if (grant.expires <= context.now) return `a grant that expired at ${new Date(grant.expires).toISOString()}`;
  return undefined;
}
