import type { BlobSource } from "../../src/workspace/blob-source.js";

interface SharedTree {
  /** The manifest index, whose digest is the tree id. */
  bytes: Uint8Array;
  blobs: ReadonlySet<string>;
  /** Reads the tree's blobs where they live (a snapshot's working tree), when not from the store. */
  source: BlobSource | undefined;
  grantees: Set<string>;
}

/**
 * The trees this node serves over the blob protocol, and to whom: a snapshot
 * to the members its task's attempts were sent to, a result to the node that
 * asked for the task. A member that merely learnt a tree id (task documents
 * replicate to every member) reads nothing of it.
 */
export class SharedTrees {
  readonly #trees = new Map<string, SharedTree>();

  /** Serve `treeId` (its manifest index and the digests of its blobs and manifest pieces), reading blobs from `source` when given. */
  share(treeId: string, bytes: Uint8Array, blobs: ReadonlySet<string>, source?: BlobSource): void {
    const known = this.#trees.get(treeId);
    if (known !== undefined) {
      known.source = source ?? known.source;
      return;
    }
    this.#trees.set(treeId, { bytes, blobs, source, grantees: new Set() });
  }

  /** Let `peer` read `treeId`; true when that is new (the tree is shared here and the peer could not read it yet). */
  grant(treeId: string, peer: string): boolean {
    const tree = this.#trees.get(treeId);
    if (tree === undefined || tree.grantees.has(peer)) return false;
    tree.grantees.add(peer);
    return true;
  }

  has(treeId: string): boolean {
    return this.#trees.has(treeId);
  }

  source(treeId: string): BlobSource | undefined {
    return this.#trees.get(treeId)?.source;
  }

  authorize(peer: string, treeId: string): boolean {
    return this.#trees.get(treeId)?.grantees.has(peer) === true;
  }

  treeBlobs(treeId: string): ReadonlySet<string> | undefined {
    return this.#trees.get(treeId)?.blobs;
  }

  tree(treeId: string): Uint8Array | undefined {
    return this.#trees.get(treeId)?.bytes;
  }
}
