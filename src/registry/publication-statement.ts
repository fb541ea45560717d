import { z } from "zod";
import { signStatement, type SignedStatement, type StatementSigner } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, timestampSchema } from "../../identity/statement-kinds.js";
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

/** Body of a `publication` statement. */
export type PublicationBody = z.infer<typeof publicationSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    publication: PublicationBody;
  }
}

registerStatementKindOnce("publication", { schema: publicationSchema, signer: (body) => body.publisher });

/** Sign a publication as `signer`. */
export function signPublication(signer: StatementSigner, body: Omit<PublicationBody, "publisher" | "publishedAt">): SignedStatement<"publication"> {
  return signStatement(signer, "publication", { ...body, publisher: signer.peerId, publishedAt: Date.now() });
}

/** The statement as a publication, when it is one. */
export function asPublication(statement: SignedStatement): SignedStatement<"publication"> | undefined {
  return statement.kind === "publication" ? statement : undefined;
}
