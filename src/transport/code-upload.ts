import { InvalidInputError } from "../contract/errors.js";
import { encodeBlobFrames, framedLength, MAX_BLOB_FRAMES_BYTES, MAX_MISSING_QUERY } from "../workspace/blob-frames.js";
import { blobsOf } from "../workspace/manifest.js";
import { snapshotDirectory } from "../workspace/snapshot.js";

/** Where {@link uploadSnapshot} sends a tree: a node's `/v1/blobs` and `/v1/trees` routes. */
export interface TreeUploadTarget {
  /** The digests of `digests` the node still needs from this caller. */
  missing(digests: string[]): Promise<string[]>;
  /** A body of blobs (blob-frames.ts). */
  put(body: Uint8Array): Promise<void>;
  putTree(tree: string, index: Uint8Array): Promise<void>;
}

/**
 * Snapshot `dir` here (as `--repo` does on a node: a git repository's HEAD
 * and changes, or the files minus `.coderclawignore`) and send the node the
 * blobs it asks for and the tree's index; answers the tree's id, for a
 * submission naming it.
 */
export async function uploadSnapshot(dir: string, options: { cacheFile?: string }, target: TreeUploadTarget): Promise<string> {
  const snap = await snapshotDirectory(dir, options);
  const digests = [...new Set([...snap.pieces.map((p) => p.digest), ...blobsOf(snap.manifest)])];
  // The server's answer is taken as a choice among the digests asked about, each once: a server naming one many times
  // would have it sent as often, and one naming a digest not asked about would have the snapshot looked up for it.
  const missing = new Set<string>();
  for (let i = 0; i < digests.length; i += MAX_MISSING_QUERY) {
    const asked = new Set(digests.slice(i, i + MAX_MISSING_QUERY));
    for (const digest of await target.missing([...asked])) if (asked.has(digest)) missing.add(digest);
  }
  let batch: Array<[string, Uint8Array]> = [];
  let batchBytes = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await target.put(encodeBlobFrames(batch));
    batch = [];
    batchBytes = 0;
  };
  for (const digest of missing) {
    const bytes = await snap.sources.read(digest);
    if (bytes === undefined) throw new InvalidInputError(`a file changed while it was snapshotted (blob ${digest} is no longer there); submit again`, "repo");
    if (batchBytes + framedLength(bytes.byteLength) > MAX_BLOB_FRAMES_BYTES) await flush();
    batch.push([digest, bytes]);
    batchBytes += framedLength(bytes.byteLength);
  }
  await flush();
  await target.putTree(snap.treeId, snap.index);
  return snap.treeId;
}
