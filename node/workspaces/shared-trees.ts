import type { BlobSource } from "../../src/workspace/blob-source.js";

interface SharedTree {
  /** The manifest index, whose digest is the tree id. */
  bytes: Uint8Array;
  blobs: ReadonlySet<string>;
  /** Reads the tree's blobs where they live (a snapshot's working tree), when not from the store. */
  source: BlobSource | undefined;
  grantees: Set<string>;
  /** The device whose submission the tree belongs to: its signed grants let other members read the tree here. */
  owner: string | undefined;
}

/**
 * The trees this node serves over the blob protocol, and to whom: a snapshot
 * to the members its task's attempts were sent to, a result to the node that
 * asked for the task. A member that merely learnt a tree id (task documents
 * replicate to every member) reads nothing of it.
 */
export class SharedTrees {
  readonly #trees = new Map<string, SharedTree>();
  readonly #maxTrees: number;

  /** @param maxTrees trees kept at most; the least recently shared or granted go first (a node that submits all day would otherwise keep every manifest in memory). */
  constructor(maxTrees = 256) {
    this.#maxTrees = maxTrees;
  }

  /**
   * Serve `treeId` (its manifest index and the digests of its blobs and manifest
   * pieces), reading blobs from `source` when given. Answers the trees no longer
   * served to make room, for their sources to be dropped.
   */
  share(treeId: string, bytes: Uint8Array, blobs: ReadonlySet<string>, source?: BlobSource): string[] {
    const known = this.#trees.get(treeId);
    if (known !== undefined) {
      known.source = source ?? known.source;
      this.#touch(treeId, known);
      return [];
    }
    this.#trees.set(treeId, { bytes, blobs, source, grantees: new Set(), owner: undefined });
    const dropped: string[] = [];
    for (const oldest of this.#trees.keys()) {
      if (this.#trees.size <= this.#maxTrees) break;
      this.#trees.delete(oldest);
      dropped.push(oldest);
    }
    return dropped;
  }

  #touch(treeId: string, tree: SharedTree): void {
    this.#trees.delete(treeId);
    this.#trees.set(treeId, tree);
  }

  /** Let `peer` read `treeId`; true when that is new (the tree is shared here and the peer could not read it yet). */
  grant(treeId: string, peer: string): boolean {
    const tree = this.#trees.get(treeId);
    if (tree === undefined) return false;
    this.#touch(treeId, tree);
    if (tree.grantees.has(peer)) return false;
    tree.grantees.add(peer);
    return true;
  }

  /**
   * Honour grants `owner` signs for `treeId` (the submitter of the task it
   * belongs to); false when the tree is not shared here or has an owner
   * already. The first owner stays: a member naming in its own submission a
   * tree this node holds for another must not become able to grant it.
   */
  own(treeId: string, owner: string): boolean {
    const tree = this.#trees.get(treeId);
    if (tree === undefined || (tree.owner !== undefined && tree.owner !== owner)) return false;
    tree.owner = owner;
    return true;
  }

  ownerOf(treeId: string): string | undefined {
    return this.#trees.get(treeId)?.owner;
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
