import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import type { BlobSource } from "../../src/workspace/blob-source.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { readVerifiedChunk } from "../../src/workspace/file-chunks.js";
import { GitObjects } from "../../src/workspace/git-objects.js";
import { CHUNK_SIZE, chunkLength, type Manifest, type ManifestFileEntry } from "../../src/workspace/manifest.js";
import type { ManifestPiece } from "../../src/workspace/manifest-pieces.js";
import { workingTreeSource } from "../../src/workspace/snapshot.js";

/*
 * A snapshot is served from the working tree it was taken of, which its user
 * goes on editing: a task that waits for a busy or offline executor is fetched
 * minutes or hours later. What git holds (tracked files unchanged against the
 * index) is read back from git's object store when the file changed since;
 * the rest (changed, untracked, outside any repository) is stored in the blob
 * store when the snapshot is submitted, within a budget.
 */

/**
 * Keeps the chunks of the snapshot's files that only the working tree holds
 * (not in `inGit`), in manifest order up to `budget` bytes: pins them all for
 * `holder` first (storing one must not evict another kept a moment before, nor
 * one the store held already), then stores those the store lacks, until the
 * quota is full of pinned blobs (keeping is a safeguard: the submission goes
 * on without the rest). Answers the digests it stored. A file whose bytes no
 * longer match the snapshot changed while it was taken: refused, naming it
 * (the caller drops the pins of a submission that never was).
 */
export async function keepWorkingOnly(store: BlobStore, holder: string, root: string, manifest: Manifest, inGit: ReadonlyMap<string, unknown>, budget: number): Promise<string[]> {
  const chosen: Array<{ path: string; digest: string; offset: number; length: number }> = [];
  const seen = new Set<string>();
  let bytes = 0;
  choose: for (const entry of manifest.entries) {
    if (entry.kind !== "file" || inGit.has(entry.path)) continue;
    for (const [index, digest] of entry.chunks.entries()) {
      if (seen.has(digest)) continue;
      const length = chunkLength(entry.size, index);
      if (bytes + length > budget) break choose;
      seen.add(digest);
      chosen.push({ path: entry.path, digest, offset: index * CHUNK_SIZE, length });
      bytes += length;
    }
  }
  if (chosen.length === 0) return [];
  await store.pin(holder, seen);
  const lacking = new Set(await store.missing(seen));
  const stored: string[] = [];
  for (const { path, digest, offset, length } of chosen) {
    if (!lacking.has(digest)) continue;
    const chunk = await readVerifiedChunk(`${root}/${path}`, offset, length, digest);
    if (chunk === undefined) throw new InvalidInputError("the file changed while it was snapshotted; submit again", path);
    try {
      await store.putVerified(digest, chunk);
    } catch (err) {
      if (err instanceof CoderClawError && err.code === "QUOTA") break;
      throw err;
    }
    stored.push(digest);
  }
  return stored;
}

/** A file being read back from git: the chunks stored so far, and the reads waiting for theirs. */
interface Recovery {
  ended: boolean;
  readonly taken: Set<string>;
  readonly waiting: Map<string, Array<() => void>>;
}

/**
 * The blobs of a submitted snapshot: from the working tree while a file still
 * holds them, else from git's object store (the blob id the snapshot saw, when
 * known, then the index's, HEAD's and `base`'s version of the path, each
 * checked chunk by chunk), recovered into the store and pinned for `holder`.
 * A file is read back once; a read of one of its chunks answers as soon as
 * that chunk is stored (a large file's first chunk does not wait for its
 * last, so the asker is not left waiting long enough to take the holder for
 * stalled). A chunk git does not hold reads as absent.
 */
export function submittedSource(store: BlobStore, holder: string, root: string, manifest: Manifest, pieces: readonly ManifestPiece[], known: { oids: ReadonlyMap<string, { oid: string }>; base?: string }): BlobSource {
  const recoveries = new Map<string, Recovery>();
  const git = new GitObjects(root);
  const wake = (recovery: Recovery, digest: string): void => {
    for (const resolve of recovery.waiting.get(digest) ?? []) resolve();
    recovery.waiting.delete(digest);
  };
  const start = (entry: ManifestFileEntry): Recovery => {
    const recovery: Recovery = { ended: false, taken: new Set(), waiting: new Map() };
    const path = `./${entry.path}`;
    const oid = known.oids.get(entry.path)?.oid;
    const candidates = [...(oid === undefined ? [] : [oid]), `:${path}`, `HEAD:${path}`, ...(known.base === undefined ? [] : [`${known.base}:${path}`])];
    void git
      .read(entry, candidates, async (digest, bytes) => {
        // Pinned first: a collection between the two must not take it.
        await store.pin(holder, [digest]);
        await store.putVerified(digest, bytes);
        recovery.taken.add(digest);
        wake(recovery, digest);
      })
      .catch(() => false)
      .finally(() => {
        recovery.ended = true;
        for (const digest of [...recovery.waiting.keys()]) wake(recovery, digest);
      });
    return recovery;
  };
  const recover = async (entry: ManifestFileEntry, digest: string): Promise<Uint8Array | undefined> => {
    let recovery = recoveries.get(entry.path);
    if (recovery === undefined) recoveries.set(entry.path, (recovery = start(entry)));
    if (!recovery.taken.has(digest) && !recovery.ended) {
      const waiting = recovery.waiting.get(digest) ?? [];
      recovery.waiting.set(digest, waiting);
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    return recovery.taken.has(digest) ? store.read(digest) : undefined;
  };
  return workingTreeSource(root, manifest, pieces, recover);
}
