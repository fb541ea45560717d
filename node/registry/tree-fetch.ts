import type { BlobClient } from "../../protocols/blobs/index.js";
import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { decodeManifestIndex, joinManifest, readPiecesWithin } from "../../src/workspace/manifest-pieces.js";
import { blobsOf, type Manifest, type ManifestLimits } from "../../src/workspace/manifest.js";

/** A published tree held whole in the store. */
export interface HeldTree {
  manifest: Manifest;
  index: Uint8Array;
  /** Its manifest's pieces and its files' blobs. */
  blobs: Set<string>;
}

/** What fetching a published tree needs. */
export interface TreeFetchDeps {
  store: BlobStore;
  client: () => BlobClient | undefined;
  limits: ManifestLimits;
}

/**
 * Makes the store hold tree `treeId` whole, fetching what it lacks from the
 * first of `peers` that serves it all. Everything is checked against the
 * tree id (index, pieces, every blob), so it does not matter who serves it;
 * a peer that lacks a part, or serves bytes that do not match, is passed
 * over for the next. A tree that is not a valid manifest is refused
 * outright: its id is what was signed, and no peer can serve other bytes
 * under it. What arrives is pinned for `holder` first, so a collection
 * cannot take it between fetch and use.
 */
export async function fetchTreeFromAny(deps: TreeFetchDeps, treeId: string, peers: readonly string[], holder: string): Promise<HeldTree> {
  const failures: string[] = [];
  for (const peer of [undefined, ...peers]) {
    try {
      return await fetchFrom(deps, treeId, peer, holder);
    } catch (err) {
      if (err instanceof InvalidInputError) throw err;
      if (peer !== undefined) failures.push(`${peer}: ${(err as Error).message}`);
    }
  }
  if (peers.length === 0) throw new CoderClawError("UNAVAILABLE", `tree ${treeId} is not held here and no member is connected to fetch it from`);
  throw new CoderClawError("NOT_FOUND", `no connected member served tree ${treeId} whole: ${failures.join("; ")}`);
}

/** The tree from the store, with what it lacks fetched from `peer` (none: the store alone). */
async function fetchFrom(deps: TreeFetchDeps, treeId: string, peer: string | undefined, holder: string): Promise<HeldTree> {
  const { store, limits } = deps;
  const client = (): BlobClient => {
    if (peer === undefined) throw new CoderClawError("NOT_FOUND", `tree ${treeId} is not held whole here`);
    const c = deps.client();
    if (c === undefined) throw new CoderClawError("UNAVAILABLE", "the blob protocol is not running yet");
    return c;
  };
  const fetchAll = async (digests: Set<string>): Promise<void> => {
    await store.pin(holder, digests);
    if ((await store.missing(digests)).length === 0) return;
    const got = await client().fetchBlobs(peer!, treeId, digests, store);
    if (got.unavailable.length > 0) throw new CoderClawError("NOT_FOUND", `it lacks ${got.unavailable.length} blob(s), e.g. ${got.unavailable[0]}`);
  };
  let index = await store.getTree(treeId);
  if (index === undefined) {
    index = await client().fetchTree(peer!, treeId);
    await store.putTree(treeId, index);
  }
  await store.pin(holder, [treeId]);
  const pieceDigests = decodeManifestIndex(treeId, index, limits);
  await fetchAll(new Set(pieceDigests));
  const { pieces } = await readPiecesWithin(pieceDigests, (d) => store.read(d), limits.maxManifestBytes, (k) => new InvalidInputError(`the pieces exceed the manifest limit of ${limits.maxManifestBytes} bytes`, `pieces[${k}]`));
  const lacking = pieces.indexOf(undefined);
  if (lacking >= 0) throw new CoderClawError("NOT_FOUND", `manifest piece ${pieceDigests[lacking]} of tree ${treeId} was not kept`);
  const manifest = joinManifest(treeId, index, pieces as Uint8Array[], limits);
  const blobs = blobsOf(manifest);
  await fetchAll(blobs);
  for (const d of pieceDigests) blobs.add(d);
  return { manifest, index, blobs };
}
