import { open, stat } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "../../identity/atomic-file.js";
import { CoderClawError } from "../contract/errors.js";

/**
 * What a node remembers of one session across restarts. The bearer token itself is
 * never stored, only its SHA-256: whoever reads the file cannot present a token.
 */
export interface StoredSession {
  id: string;
  meshId: string;
  userId: string;
  deviceId: string;
  roles: string[];
  /** Roles granted by the identity provider at login, on top of signed grants. */
  providerRoles: string[];
  gen: number;
  issuedAt: number;
  expiresAt: number;
  /** SHA-256 (base64url) of the newest token of the session. */
  tokenHash: string;
  readOnly: boolean;
  revoked?: string;
}

/** Where sessions are kept between restarts. */
export interface SessionPersistence {
  /** The sessions as last saved (or loaded). */
  saved(): readonly StoredSession[];
  /** Replaces the stored sessions; resolves once they are durable. */
  save(sessions: readonly StoredSession[]): Promise<void>;
}

/** Largest sessions file read: a node with this many live sessions has a leak, not users. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

const name = z.string().min(1).max(256);
const StoredSessionSchema = z.strictObject({
  id: z.uuid(),
  meshId: name,
  userId: name,
  deviceId: name,
  roles: z.array(name).max(64),
  providerRoles: z.array(name).max(64),
  gen: z.number().int().min(1),
  issuedAt: z.number().int().min(0),
  expiresAt: z.number().int().min(0),
  tokenHash: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  readOnly: z.boolean(),
  revoked: z.string().max(1024).optional(),
});
const SessionFileSchema = z.strictObject({ v: z.literal(1), sessions: z.array(StoredSessionSchema).max(1_000_000) });

/**
 * Opens the sessions file of a node's home (created on the first save, mode 0600).
 * Refuses, naming the file and the fix, a file that group or others may access (one
 * they can write could bring a revoked session back) and one that does not parse.
 * Saves are serialised, each writing the whole set atomically and synced, so a
 * SIGKILL leaves the previous or the new set, never a mix.
 */
export async function openSessionFile(path: string): Promise<SessionPersistence> {
  let last: readonly StoredSession[] = await readSessionFile(path);
  let queue: Promise<void> = Promise.resolve();
  return {
    saved: () => last,
    save(sessions) {
      last = sessions.map((s) => ({ ...s }));
      const text = JSON.stringify({ v: 1, sessions: last });
      const write = queue.then(() => writeFileAtomic(path, text, { mode: 0o600 }));
      queue = write.catch(() => undefined);
      return write;
    },
  };
}

async function readSessionFile(path: string): Promise<StoredSession[]> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (info === undefined) return [];
  if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
    throw new CoderClawError("PERMISSION_DENIED", `${path}: sessions file is accessible by group or others (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 on it, or delete it to end every session`);
  }
  if (info.size > MAX_FILE_BYTES) throw new CoderClawError("INVALID_INPUT", `${path}: sessions file is ${info.size} bytes, over the ${MAX_FILE_BYTES} limit; delete it to end every session`);
  const handle = await open(path, "r");
  let text: string;
  try {
    text = await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CoderClawError("INVALID_INPUT", `${path}: sessions file is not JSON (${(err as Error).message}); delete it to end every session`);
  }
  const parsed = SessionFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CoderClawError("INVALID_INPUT", `${path}: sessions file: ${issue?.path.join(".") || "(top)"}: ${issue?.message ?? "invalid"}; delete it to end every session`);
  }
  return parsed.data.sessions;
}
