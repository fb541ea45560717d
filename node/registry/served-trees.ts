import type { BlobStore } from "../../src/workspace/blob-store.js";

const HOLDER_PREFIX = "registry:";

/** The blob store holder that keeps a published tree's blobs on a node that published or installed it. */
export function registryHolder(treeId: string): string {
  return `${HOLDER_PREFIX}${treeId}`;
}

/**
 * The published trees this node serves to every member: those it published
 * and those it installed, so that a package stays installable while its
 * publisher is offline. Unlike a task's trees, which only the members a task
 * went to may read, a publication is the mesh's: any member may fetch it. The
 * list is the store's registry pins, so it survives restarts.
 */
export class ServedTrees {
  readonly #trees = new Map<string, { index: Uint8Array; blobs: ReadonlySet<string> }>();
  readonly #store: BlobStore;

  private constructor(store: BlobStore) {
    this.#store = store;
  }

  /** The served trees as the store's pins and manifests left them. */
  static async open(store: BlobStore): Promise<ServedTrees> {
    const served = new ServedTrees(store);
    for (const holder of store.holders()) {
      if (!holder.startsWith(HOLDER_PREFIX)) continue;
      const treeId = holder.slice(HOLDER_PREFIX.length);
      const index = await store.getTree(treeId);
      // A tree whose manifest is gone is fetched again at its next install.
      if (index !== undefined) served.#trees.set(treeId, { index, blobs: served.#blobsOf(treeId) });
    }
    return served;
  }

  #blobsOf(treeId: string): Set<string> {
    const blobs = new Set(this.#store.pinnedBy(registryHolder(treeId)));
    blobs.delete(treeId);
    return blobs;
  }

  /** Keep `treeId` (its manifest index stored, `blobs` its pieces and files) and serve it; durable when it resolves. */
  async add(treeId: string, index: Uint8Array, blobs: Iterable<string>): Promise<void> {
    await this.#store.pin(registryHolder(treeId), [treeId, ...blobs]);
    this.#trees.set(treeId, { index, blobs: this.#blobsOf(treeId) });
  }

  /** Stop serving `treeId` and let the store collect its blobs. */
  async drop(treeId: string): Promise<void> {
    this.#trees.delete(treeId);
    await this.#store.unpin(registryHolder(treeId));
  }

  has(treeId: string): boolean {
    return this.#trees.has(treeId);
  }

  tree(treeId: string): Uint8Array | undefined {
    return this.#trees.get(treeId)?.index;
  }

  treeBlobs(treeId: string): ReadonlySet<string> | undefined {
    return this.#trees.get(treeId)?.blobs;
  }
}
