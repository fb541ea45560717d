import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, rename, rm, symlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { CoderClawError, InvalidInputError } from "../contract/errors.js";
import { blobDigest, CHUNK_SIZE, comparePaths, DEFAULT_MANIFEST_LIMITS, validateManifest, type Manifest, type ManifestLimits } from "./manifest.js";
import { mapPool } from "./pool.js";

/** Options of {@link materializeTree}. */
export interface MaterializeOptions {
  /** Limits the manifest must keep (defaults: {@link DEFAULT_MANIFEST_LIMITS}). */
  readonly limits?: ManifestLimits;
  /** Files written at once (default 8). */
  readonly concurrency?: number;
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Writes the tree of `manifest` into `targetDir`, which must not exist yet,
 * all or nothing: the tree is built in a sibling `<target>.partial-<random>`
 * and renamed into place only when complete. Every chunk from `readBlob` is
 * checked against its digest before it is written; files are created
 * exclusively without following links, and links are made last, so no write
 * can land outside the tree. On any failure the partial directory is removed
 * and the error names the entry.
 */
export async function materializeTree(
  manifest: Manifest,
  targetDir: string,
  readBlob: (digest: string) => Promise<Uint8Array>,
  options: MaterializeOptions = {},
): Promise<void> {
  validateManifest(manifest, options.limits ?? DEFAULT_MANIFEST_LIMITS);
  const target = resolve(targetDir);
  const exists = await lstat(target).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return false;
      throw err;
    },
  );
  if (exists) throw new InvalidInputError(`${target} exists already; a tree is materialised only into a new directory`, "targetDir");
  await mkdir(dirname(target), { recursive: true });
  const partial = `${target}.partial-${randomBytes(6).toString("hex")}`;
  await mkdir(partial, { mode: 0o755 });
  try {
    const directories = new Set<string>();
    for (const entry of manifest.entries) {
      for (let at = entry.path.indexOf("/"); at >= 0; at = entry.path.indexOf("/", at + 1)) directories.add(entry.path.slice(0, at));
    }
    // Bytewise order puts every directory after its parent.
    for (const directory of [...directories].sort(comparePaths)) {
      await mkdir(join(partial, directory), { mode: 0o755 }).catch((err: unknown) => {
        // A directory is no entry of its own: the first entry under it is named.
        const index = manifest.entries.findIndex((entry) => entry.path.startsWith(`${directory}/`));
        throw failure(index, manifest.entries[index]!.path, err);
      });
    }
    const indexed = manifest.entries.map((entry, index) => ({ entry, index }));
    await mapPool(indexed, options.concurrency ?? 8, async ({ entry, index }) => {
      if (entry.kind !== "file") return;
      const mode = entry.executable ? 0o755 : 0o644;
      const handle = await open(join(partial, entry.path), CREATE_FLAGS, mode).catch((err: unknown) => {
        throw failure(index, entry.path, err);
      });
      try {
        for (const [j, digest] of entry.chunks.entries()) {
          const bytes = await readBlob(digest).catch((err: unknown) => {
            throw failure(index, entry.path, err);
          });
          const length = Math.min(CHUNK_SIZE, entry.size - j * CHUNK_SIZE);
          if (bytes.byteLength !== length || blobDigest(bytes) !== digest) {
            throw new InvalidInputError(`the bytes given for ${digest} do not match it (entry ${JSON.stringify(entry.path)})`, `entries[${index}].chunks[${j}]`);
          }
          await handle.write(bytes, 0, length, j * CHUNK_SIZE);
        }
        // The process umask must not decide the mode the manifest gives.
        await handle.chmod(mode);
      } catch (err) {
        throw failure(index, entry.path, err);
      } finally {
        await handle.close();
      }
    });
    for (const { entry, index } of indexed) {
      if (entry.kind !== "symlink") continue;
      await symlink(entry.target, join(partial, entry.path)).catch((err: unknown) => {
        throw failure(index, entry.path, err);
      });
    }
    await rename(partial, target);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
}

/** An error about entry `index`, naming it; errors that already name their field pass through. */
function failure(index: number, path: string, err: unknown): CoderClawError {
  if (err instanceof CoderClawError && err.field !== undefined) return err;
  const code = err instanceof CoderClawError ? err.code : "UNAVAILABLE";
  const message = err instanceof Error ? err.message : String(err);
  return new CoderClawError(code, `entries[${index}] ${JSON.stringify(path)}: could not be materialised: ${message}`, { field: `entries[${index}]`, cause: err });
}
