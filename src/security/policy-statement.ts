import { createHash } from "node:crypto";
import { z } from "zod";
import { decodeStatement, signStatement, type SignedStatement } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, timestampSchema } from "../../identity/statement-kinds.js";
import type { Signer } from "./keys.js";

/**
 * Body of a `security-policy` statement: an admin publishes the policy text of one
 * scope for the mesh. The statement carries the text's hash rather than the text,
 * so it stays within identity/'s statement size limit whatever the policy's size;
 * the text travels beside it and must hash to `sha256`.
 */
export const policyStatementSchema = z.strictObject({
  issuer: deviceIdSchema,
  meshId: meshIdSchema,
  /** `repo`: `.coderClaw/security.yaml`; `team`: `team-policy.yaml`. */
  scope: z.enum(["repo", "team"]),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  issuedAt: timestampSchema,
});

/** Body of a `security-policy` statement. */
export type PolicyStatement = z.infer<typeof policyStatementSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    "security-policy": PolicyStatement;
  }
}

registerStatementKindOnce("security-policy", { schema: policyStatementSchema, signer: (body) => body.issuer });

/** A signed policy as it replicates: the statement and the YAML text it vouches for. */
export interface SignedPolicy {
  statement: Uint8Array;
  text: string;
}

/** Hex SHA-256 of policy text, as UTF-8. */
export function policyTextHash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Signs policy text for a scope of a mesh as `signer` (who must be an admin for it to take effect). */
export function signPolicy(signer: Signer, policy: { meshId: string; scope: "repo" | "team"; text: string; issuedAt?: number }): SignedPolicy {
  const statement = signStatement(signer, "security-policy", {
    issuer: signer.peerId,
    meshId: policy.meshId,
    scope: policy.scope,
    sha256: policyTextHash(policy.text),
    issuedAt: policy.issuedAt ?? Date.now(),
  });
  return { statement: statement.bytes, text: policy.text };
}

/**
 * Verifies a signed policy's statement and that the text is the one it signed.
 * Whether the issuer may set policy is the caller's decision (it holds the grants).
 */
export function openSignedPolicy(policy: SignedPolicy, meshId: string): { ok: true; statement: SignedStatement<"security-policy"> } | { ok: false; reason: string } {
  let statement: SignedStatement;
  try {
    statement = decodeStatement(policy.statement);
  } catch (err) {
    return { ok: false, reason: `forged or malformed policy statement: ${(err as Error).message}` };
  }
  if (statement.kind !== "security-policy") return { ok: false, reason: `statement kind is ${statement.kind}, not security-policy` };
  if (statement.body.meshId !== meshId) return { ok: false, reason: `policy is for mesh ${statement.body.meshId}, not ${meshId}` };
  if (policyTextHash(policy.text) !== statement.body.sha256) return { ok: false, reason: "policy text does not match its signed hash" };
  return { ok: true, statement };
}
