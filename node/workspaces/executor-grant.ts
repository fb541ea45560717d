import { z } from "zod";
import { fromBase64Url, toBase64Url } from "../../identity/bytes.js";
import { InvalidInputError } from "../../src/contract/errors.js";
import type { TaskSubmitRequest } from "../../src/contract/types.js";
import { MAX_GRANT_BYTES } from "../../protocols/blobs/messages.js";

/**
 * Metadata key of the grant an attempt carries for its executor: signed by the
 * submitter for the tree the request names, so that the executor may fetch that
 * tree from any member holding it, not only from the submitter. It travels
 * inside the signed submission; it is no secret (a holder serves only the
 * grantee's own authenticated stream).
 */
export const EXECUTOR_GRANT_KEY = "workspaceGrant";

const tokenSchema = z.string().min(1).max(Math.ceil((MAX_GRANT_BYTES * 4) / 3));

/**
 * The bytes of a grant token (base64url, as `task grant` prints it and a request
 * carries it); anything else is refused naming `field`. What the grant says is
 * for the holder to judge.
 */
export function grantTokenBytes(raw: unknown, field: string): Uint8Array {
  const bytes = tokenSchema.safeParse(raw).success ? fromBase64Url(raw as string) : undefined;
  if (bytes === undefined || bytes.byteLength === 0) throw new InvalidInputError(`must be a grant token (base64url of at most ${MAX_GRANT_BYTES} bytes, as \`coderclaw task grant\` prints it)`, field);
  return bytes;
}

/** The grant a request carries for its executor, or undefined; a malformed one is refused naming the field (it came from another device). */
export function executorGrantOf(metadata: Readonly<Record<string, unknown>> | undefined): Uint8Array | undefined {
  const raw = metadata?.[EXECUTOR_GRANT_KEY];
  return raw === undefined ? undefined : grantTokenBytes(raw, `metadata.${EXECUTOR_GRANT_KEY}`);
}

/** `request` carrying `grant` for its executor. */
export function withExecutorGrant(request: Readonly<TaskSubmitRequest>, grant: Uint8Array): TaskSubmitRequest {
  return { ...request, metadata: { ...request.metadata, [EXECUTOR_GRANT_KEY]: toBase64Url(grant) } };
}
