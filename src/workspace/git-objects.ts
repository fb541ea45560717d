import { spawn } from "node:child_process";
import { blobDigest, CHUNK_SIZE, type ManifestFileEntry } from "./manifest.js";
import { gitEnv } from "./tree-listing.js";

/** Where git may still hold a file's snapshotted content: a blob id, or a revision and path such as `HEAD:src/a.ts`. */
export type GitCandidate = string;

/**
 * Reads a file's content back out of a repository's object store, for a
 * snapshot whose working file changed after it was taken: git keeps the blob
 * the index or a commit named, whatever the working tree does since. Each
 * candidate is streamed chunk by chunk, every chunk checked against the
 * entry's digest before it is handed on, so a candidate holding other bytes is
 * dropped at its first wrong chunk and never yields a byte of them.
 *
 * @param root The work tree (or a directory under it) the snapshot was taken in.
 * @param entry The file as the manifest records it.
 * @param candidates Tried in order until one holds exactly the entry's content.
 * @param take Called with each checked chunk, in order; awaited before the next is read.
 * @returns Whether a candidate held the content (every chunk was then taken).
 */
export async function readFromGit(root: string, entry: ManifestFileEntry, candidates: readonly GitCandidate[], take: (digest: string, bytes: Uint8Array) => Promise<void>): Promise<boolean> {
  for (const candidate of new Set(candidates)) {
    if (await readCandidate(root, entry, candidate, take)) return true;
  }
  return false;
}

async function readCandidate(root: string, entry: ManifestFileEntry, candidate: GitCandidate, take: (digest: string, bytes: Uint8Array) => Promise<void>): Promise<boolean> {
  // `--` is not taken by cat-file: a candidate starting with a dash would be read as an option.
  if (candidate.startsWith("-")) return false;
  const child = spawn("git", ["cat-file", "blob", candidate], { cwd: root, env: gitEnv(), stdio: ["ignore", "pipe", "ignore"] });
  const exited = new Promise<boolean>((resolve) => {
    child.once("error", () => resolve(false));
    child.once("close", (code) => resolve(code === 0));
  });
  let index = 0;
  let chunk = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, entry.size));
  let filled = 0;
  let total = 0;
  const complete = async (): Promise<boolean> => {
    const digest = entry.chunks[index];
    if (digest === undefined || blobDigest(chunk.subarray(0, filled)) !== digest) return false;
    await take(digest, new Uint8Array(chunk.buffer, chunk.byteOffset, filled));
    index++;
    total += filled;
    chunk = Buffer.allocUnsafe(Math.max(0, Math.min(CHUNK_SIZE, entry.size - total)));
    filled = 0;
    return true;
  };
  try {
    for await (const data of child.stdout as AsyncIterable<Buffer>) {
      for (let at = 0; at < data.byteLength; ) {
        if (total + filled + data.byteLength - at > entry.size) return false;
        const n = Math.min(chunk.byteLength - filled, data.byteLength - at);
        data.copy(chunk, filled, at, at + n);
        filled += n;
        at += n;
        if (filled === chunk.byteLength && !(await complete())) return false;
      }
    }
    if (!(await exited)) return false;
    return total === entry.size && index === entry.chunks.length;
  } finally {
    child.kill();
  }
}
