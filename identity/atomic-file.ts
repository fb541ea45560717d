import { randomBytes } from "node:crypto";
import { mkdir, open, rename, unlink, link } from "node:fs/promises";
import { dirname, basename, join } from "node:path";

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** File mode of the written file (default 0o600: everything here is private). */
  readonly mode?: number;
  /** When true, fail with EEXIST instead of replacing an existing file. */
  readonly exclusive?: boolean;
}

/**
 * Writes `data` so readers see either the old file or the whole new one: a
 * temp file in the same directory is written, synced, then renamed (or, when
 * exclusive, hard-linked so a concurrent creator is never clobbered).
 * Parent directories are created with mode 0o700.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, "wx", options.mode ?? 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (options.exclusive === true) {
      await link(temp, path);
      await unlink(temp);
    } else {
      await rename(temp, path);
    }
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; some platforms cannot open directories, which is fine.
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    return;
  }
}
