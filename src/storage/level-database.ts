import { mkdirSync } from "node:fs";
import { Level } from "level";
import { StorageError } from "../contract/errors.js";

/** The LevelDB handle type used across storage modules: string keys, byte values. */
export type Database = Level<string, Uint8Array>;

/**
 * Open (creating if needed) the LevelDB database at `path`.
 *
 * A database held by another process, or a corrupt one, is a typed
 * {@link StorageError} naming the path: we never start fresh beside a database
 * we could not read, because that would silently hide every accepted task.
 */
export async function openDatabase(path: string): Promise<Database> {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const db = new Level<string, Uint8Array>(path, { keyEncoding: "utf8", valueEncoding: "view" });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === "LEVEL_LOCKED") {
      throw new StorageError("STORAGE_LOCKED", path, "database is locked by another process (is a node already running with this data directory?)", err);
    }
    throw new StorageError("STORAGE_CORRUPT", path, `database cannot be opened: ${cause?.message ?? (err as Error).message}`, err);
  }
  return db;
}
