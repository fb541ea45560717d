import { z } from "zod";
import { signStatement, type SignedStatement, type StatementSigner } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, statementIdSchema, timestampSchema } from "../../identity/statement-kinds.js";
import { packageNameSchema } from "./package-name.js";
import { VERSION_PATTERN } from "./version-range.js";

/**
 * Body of a `publication` statement: `publisher` says that version `version`
 * of the skill or agent `name` is the content-addressed tree `tree`. The
 * bytes travel as blobs; this names them by digest, so whoever serves them,
 * a member installs exactly what was signed. Every receiver takes it only
 * when the publisher holds `registry:publish` by that receiver's own view of
 * the mesh's grants.
 */
export const publicationSchema = z.strictObject({
  publisher: deviceIdSchema,
  meshId: meshIdSchema,
  kind: z.enum(["skill", "agent"]),
  name: packageNameSchema,
  version: z.string().regex(VERSION_PATTERN, "must be a version like 1.2.0"),
  tree: z.string().regex(/^[0-9a-f]{64}$/, "must be a tree id (64 lowercase hex characters)"),
  /** Bytes of the files, for a member to judge before fetching. */
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  files: z.number().int().min(1).max(1_000_000),
  publishedAt: timestampSchema,
});

/**
 * Body of a `publication-yank` statement: `signer` withdraws the publication
 * it names (a version found broken or unsafe). Taken only from the
 * publication's publisher or an admin. A yanked version is no longer
 * installed for a range; its bytes stay served, and where it is installed it
 * stays, listed as yanked.
 */
export const yankSchema = z.strictObject({
  signer: deviceIdSchema,
  meshId: meshIdSchema,
  publication: statementIdSchema,
  reason: z.string().max(500),
  yankedAt: timestampSchema,
});

/** Body of a `publication` statement. */
export type PublicationBody = z.infer<typeof publicationSchema>;
/** Body of a `publication-yank` statement. */
export type YankBody = z.infer<typeof yankSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    publication: PublicationBody;
    "publication-yank": YankBody;
  }
}

registerStatementKindOnce("publication", { schema: publicationSchema, signer: (body) => body.publisher });
registerStatementKindOnce("publication-yank", { schema: yankSchema, signer: (body) => body.signer });

/** Sign a publication as `signer`. */
export function signPublication(signer: StatementSigner, body: Omit<PublicationBody, "publisher" | "publishedAt">): SignedStatement<"publication"> {
  return signStatement(signer, "publication", { ...body, publisher: signer.peerId, publishedAt: Date.now() });
}

/** Sign the withdrawal of the publication `body.publication` names. */
export function signYank(signer: StatementSigner, body: Omit<YankBody, "signer" | "yankedAt">): SignedStatement<"publication-yank"> {
  return signStatement(signer, "publication-yank", { ...body, signer: signer.peerId, yankedAt: Date.now() });
}

/** The statement as a publication, when it is one. */
export function asPublication(statement: SignedStatement): SignedStatement<"publication"> | undefined {
  return statement.kind === "publication" ? statement : undefined;
}
