import { z } from "zod";
import { InvalidInputError } from "../contract/errors.js";
import { packageNameSchema } from "./package-name.js";
import { parseRange, VERSION_PATTERN } from "./version-range.js";

/** A lock file larger than this is refused rather than read. */
export const MAX_LOCK_FILE_BYTES = 1024 * 1024;

const digest = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex characters");

/** One installed package: the exact version, the tree it is, and the statement that vouched for it. */
export const lockEntrySchema = z.strictObject({
  version: z.string().regex(VERSION_PATTERN, "must be a version like 1.2.0"),
  tree: digest,
  publication: digest,
  publisher: z.string().min(1).max(128),
  /** The range it was installed with: what `skill update` stays within. */
  range: z.string().max(64).refine((r) => {
    try {
      parseRange(r);
      return true;
    } catch {
      return false;
    }
  }, "must be a version range like ^1.2.0"),
  installedAt: z.iso.datetime(),
});

/** One installed package. */
export type LockEntry = z.infer<typeof lockEntrySchema>;

const lockSchema = z.strictObject({
  lockVersion: z.literal(1),
  skills: z.record(packageNameSchema, lockEntrySchema).refine((r) => Object.keys(r).length <= 10_000, "at most 10000 skills"),
});

/** What a lock file records: two nodes with the same lock file run the same bytes. */
export type LockFile = z.infer<typeof lockSchema>;

/** An empty lock file. */
export function emptyLock(): LockFile {
  return { lockVersion: 1, skills: {} };
}

/** Parses lock file text, refusing it naming `file` and the field when it is not one. */
export function parseLockFile(text: string, file: string): LockFile {
  if (Buffer.byteLength(text, "utf8") > MAX_LOCK_FILE_BYTES) throw new InvalidInputError(`${file} is over ${MAX_LOCK_FILE_BYTES} bytes`, file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidInputError(`${file} is not JSON: ${(err as Error).message}`, file);
  }
  const parsed = lockSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  // A bad key's own reason is one level down.
  const reason = issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  throw new InvalidInputError(reason, `${file}: ${issue.path.join(".") || "(top)"}`);
}

/** The lock file's text: sorted by name, so the same installs give the same bytes. */
export function formatLockFile(lock: LockFile): string {
  const skills = Object.fromEntries(Object.entries(lock.skills).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${JSON.stringify({ lockVersion: 1, skills }, null, 2)}\n`;
}
