import { z } from "zod";
import { isDeviceId } from "./device-id.js";

/** A device id (Ed25519 PeerId string). */
export const deviceIdSchema = z.string().max(64).refine(isDeviceId, "not an Ed25519 device id");
/** A statement id: lowercase hex SHA-256 of the statement's signed bytes. */
export const statementIdSchema = z.string().regex(/^[0-9a-f]{64}$/, "not a statement id");
/** A mesh id, derived from its genesis (see mesh.ts). */
export const meshIdSchema = z.string().regex(/^mesh-[a-z2-7]{26}$/, "not a mesh id");
/** Milliseconds since the Unix epoch. */
export const timestampSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Levels a certificate can grant (nobody certifies "untrusted"). */
export const grantableLevelSchema = z.enum(["verified", "trusted"]);

/** Body of `mesh-genesis`: the founder declares a mesh; the founder signs it. */
export const meshGenesisSchema = z.strictObject({
  meshId: meshIdSchema,
  founder: deviceIdSchema,
  name: z.string().min(1).max(64),
  createdAt: timestampSchema,
});
/** Body of `mesh-genesis`. */
export type MeshGenesisBody = z.infer<typeof meshGenesisSchema>;

/** Body of `trust-cert`: `issuer` vouches for `subject` at `level` in `meshId`. */
export const trustCertSchema = z.strictObject({
  issuer: deviceIdSchema,
  subject: deviceIdSchema,
  level: grantableLevelSchema,
  meshId: meshIdSchema,
  issuedAt: timestampSchema,
  expiresAt: timestampSchema.optional(),
  nonce: z.instanceof(Uint8Array).refine((b) => b.byteLength === 16, "nonce must be 16 bytes"),
});
/** Body of `trust-cert`. */
export type TrustCertBody = z.infer<typeof trustCertSchema>;

/** Body of `revocation`: `target` is a device id (permanent) or a certificate's statement id. */
export const revocationSchema = z.strictObject({
  issuer: deviceIdSchema,
  target: z.union([deviceIdSchema, statementIdSchema]),
  reason: z.string().max(256),
  issuedAt: timestampSchema,
});
/** Body of `revocation`. */
export type RevocationBody = z.infer<typeof revocationSchema>;

/**
 * Body type of every statement kind, by kind. Layers above add kinds by
 * declaration merging (`declare module "coderclaw/identity" { interface
 * StatementBodies { "role-grant": RoleGrant } }`) and registering a schema
 * with {@link registerStatementKind}.
 */
export interface StatementBodies {
  "mesh-genesis": MeshGenesisBody;
  "trust-cert": TrustCertBody;
  revocation: RevocationBody;
}

/** A statement kind name. */
export type StatementKind = keyof StatementBodies & string;

/** What identity/ needs to know about a statement kind. */
export interface StatementKindSpec<K extends StatementKind> {
  /**
   * Validates (and types) a decoded body; must accept only canonical-CBOR-safe
   * values. It only judges: decoded statements carry the signed body as is,
   * so defaults or transforms in it have no effect.
   */
  readonly schema: z.ZodType<StatementBodies[K]>;
  /** The device that must have signed a body of this kind. */
  readonly signer: (body: StatementBodies[K]) => string;
}

const registry = new Map<string, StatementKindSpec<StatementKind>>();

/**
 * Adds a statement kind. Kinds are names on the wire, so registering an
 * existing name is refused rather than silently changing what it means.
 */
export function registerStatementKind<K extends StatementKind>(kind: K, spec: StatementKindSpec<K>): void {
  if (registry.has(kind)) throw new Error(`statement kind already registered: ${kind}`);
  registry.set(kind, spec as unknown as StatementKindSpec<StatementKind>);
}

/**
 * {@link registerStatementKind} for a layer's module, which a process may load
 * twice (two copies of the package): a kind already registered is left as it is.
 */
export function registerStatementKindOnce<K extends StatementKind>(kind: K, spec: StatementKindSpec<K>): void {
  if (!registry.has(kind)) registerStatementKind(kind, spec);
}

/** The spec of a registered kind, or undefined. */
export function statementKindSpec(kind: string): StatementKindSpec<StatementKind> | undefined {
  return registry.get(kind);
}

registerStatementKind("mesh-genesis", { schema: meshGenesisSchema, signer: (body) => body.founder });
registerStatementKind("trust-cert", { schema: trustCertSchema, signer: (body) => body.issuer });
registerStatementKind("revocation", { schema: revocationSchema, signer: (body) => body.issuer });
