import { createHash } from "node:crypto";
import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { blobDigest, blobsOf, DEFAULT_MANIFEST_LIMITS, totalSize, type Manifest, type ManifestLimits } from "../../src/workspace/manifest.js";
import { decodeManifestIndex, joinManifest, readPiecesWithin } from "../../src/workspace/manifest-pieces.js";
import type { WorkspaceSpec } from "../../src/workspace/task-spec.js";
import { KeyedTurns } from "../../src/util/keyed-turns.js";

/** Dependencies and limits of {@link CodeUploads}. */
export interface CodeUploadsOptions {
  store: BlobStore;
  /** Limits an uploaded tree must keep (the node's runtime.yaml `code` limits). */
  limits?: ManifestLimits;
  /** Makes an uploaded tree a submission of this node (CodeWorkspaces.adoptUploaded). */
  adopt: (tree: string, manifest: Manifest, pieces: readonly string[], artifacts: readonly string[] | undefined, uploader: string) => Promise<WorkspaceSpec>;
  /** Bytes one caller may hold uploaded and not yet submitted. Default: the tree limit or a quarter of the store's quota, whichever is less. */
  maxCallerBytes?: number;
  /** Bytes every caller together may hold uploaded, submitted or not. Default half the store's quota. */
  maxTotalBytes?: number;
  /** What the store holds for this node's submissions of uploaded trees (CodeWorkspaces.uploadedHeld), counted against `maxTotalBytes`. */
  submitted?: (uploader?: string) => { bytes: number; blobs: number };
  /** An upload left this long without a call of its caller is dropped, ms. Default one hour. */
  idleMs?: number;
  now?: () => number;
}

/** What a tree put with {@link CodeUploads.putTree} holds. */
export interface UploadedTree {
  tree: string;
  files: number;
  bytes: number;
}

/** One caller's uploads. */
interface CallerUploads {
  readonly holder: string;
  /** Bytes uploaded since its last submission, each blob's cost included (what the budget counts). */
  bytes: number;
  /** Trees put and not yet submitted, with their pieces. */
  readonly trees: Map<string, string[]>;
  touched: number;
}

/**
 * What each blob counts for in the budgets besides its bytes: the store keeps an entry and pins of it in memory
 * (some 700 bytes of heap) and on disk, so that counted by its bytes alone, a budget of megabytes held millions of
 * blobs of a few bytes, and the node ran out of memory.
 */
const BLOB_COST_BYTES = 4096;

/** `bytes` of `blobs` blobs as the budgets count them. */
const counted = (bytes: number, blobs: number): number => bytes + blobs * BLOB_COST_BYTES;

/** Trees one caller may have put and not yet submitted: the oldest goes beyond. */
const MAX_TREES_PER_CALLER = 4;

/** The session a holder is, as a submission records who uploaded its tree. */
const uploaderOf = (holder: string): string => holder.slice(UPLOAD_HOLDER_PREFIX.length);

/** Holder names of uploads in the blob store: all are dropped when the node starts (see {@link CodeUploads.dropLeftovers}). */
const UPLOAD_HOLDER_PREFIX = "upload:";

/**
 * Code sent with a task over the HTTP API, where the node must not read a
 * caller's files itself: the caller snapshots its directory, sends the blobs
 * the node lacks and the tree's index, then submits naming the tree, which
 * the node adopts as a submission of its own (CodeWorkspaces.adoptUploaded).
 *
 * Everything is per caller (an HTTP session). A blob counts as held for a
 * caller only once that caller sent its bytes, so {@link missing} tells no
 * caller what the node holds for another (the store is shared, and a digest
 * names a file's content), and a tree is adopted only when its caller sent
 * every blob of it: knowing a tree's digests is not holding its content.
 * What a caller uploaded stays pinned for it after it submits, so that a
 * second submission of the same tree, changed a little, sends only what
 * changed; it is dropped after {@link CodeUploadsOptions.idleMs} without a
 * call, and when the node restarts.
 */
export class CodeUploads {
  readonly #o: CodeUploadsOptions;
  readonly #callers = new Map<string, CallerUploads>();
  /** One call of each caller at a time: a submission resets the caller's holder, which a put must not race. */
  readonly #turns = new KeyedTurns();

  constructor(options: CodeUploadsOptions) {
    this.#o = options;
  }

  /** Drop uploads a previous run of the node left pinned: their callers' sessions hold no state across a restart. */
  async dropLeftovers(): Promise<void> {
    for (const holder of this.#o.store.holders()) {
      if (holder.startsWith(UPLOAD_HOLDER_PREFIX)) await this.#o.store.unpin(holder);
    }
  }

  /** The digests of `digests` that `caller` has not sent (whatever the store holds for others), in order, each once. */
  async missing(caller: string, digests: readonly string[]): Promise<string[]> {
    return this.#turn(caller, async (uploads) => {
      const sent = this.#sentBy(uploads);
      return [...new Set(digests)].filter((digest) => !sent(digest));
    });
  }

  /**
   * Store blobs `caller` sent, each checked against its digest first: one that
   * does not hash to it refuses them all (naming it), and nothing is stored.
   * Refused as QUOTA beyond the caller's budget or the node's.
   */
  async put(caller: string, blobs: ReadonlyArray<readonly [digest: string, bytes: Uint8Array]>): Promise<void> {
    for (const [i, [digest, bytes]] of blobs.entries()) {
      if (blobDigest(bytes) !== digest) throw new InvalidInputError(`the ${bytes.byteLength} bytes sent do not hash to ${digest}`, `blobs[${i}]`);
    }
    await this.#turn(caller, async (uploads) => {
      const sent = this.#sentBy(uploads);
      const fresh = new Map(blobs.filter(([digest]) => !sent(digest)));
      const adding = [...fresh.values()].reduce((n, bytes) => n + counted(bytes.byteLength, 1), 0);
      const mine = this.#o.maxCallerBytes ?? Math.min(this.#limits().maxTreeBytes, this.#o.store.quotaBytes / 4);
      if (uploads.bytes + adding > mine) {
        throw new CoderClawError("QUOTA", `this session's uploads not yet submitted would come to ${uploads.bytes + adding} bytes, over its limit of ${Math.floor(mine)}: submit the tree sent so far, or wait an hour for it to be dropped`);
      }
      // A submission keeps its tree for the result retention (days) while its session's budget starts again: uncounted, a
      // session could pin the whole store by sending and submitting in turn. Its own submissions count against the
      // session's limit, so that one session cannot take the node's for days, and everyone's against the node's.
      const own = uploads.bytes + adding;
      if (own + this.#submittedWithin(mine, own, uploaderOf(uploads.holder)) > mine) {
        throw new CoderClawError("QUOTA", `this session's uploads, sent or submitted, would go over its limit of ${Math.floor(mine)} bytes: a submission keeps its tree for the result retention; try again once older ones expire`);
      }
      const all = this.#o.maxTotalBytes ?? this.#o.store.quotaBytes / 2;
      const total = [...this.#callers.values()].reduce((n, c) => n + c.bytes, 0) + adding;
      // Not the sum: it would tell a session what the others send.
      if (total + this.#submittedWithin(all, total) > all) throw new CoderClawError("QUOTA", `uploads on this node, sent or submitted, would go over its limit of ${Math.floor(all)} bytes; try again later`);
      // Counted before the writes: other callers' puts run meanwhile, and must see these bytes taken.
      uploads.bytes += adding;
      try {
        // Pinned first, so a collection between the write and the pin cannot take them.
        await this.#o.store.pin(uploads.holder, fresh.keys());
        await this.#o.store.putVerifiedAll([...fresh]);
      } catch (err) {
        // What was stored before the failure stays pinned for the caller, and counted.
        uploads.bytes -= [...fresh].reduce((n, [digest, bytes]) => n + (this.#o.store.has(digest) ? 0 : counted(bytes.byteLength, 1)), 0);
        throw err;
      }
    });
  }

  /**
   * Take the index of tree `tree` from `caller`, once every piece of its
   * manifest and every blob the manifest names is one the caller sent; the
   * manifest is checked against the node's limits. Refused, naming the piece
   * or the entry, otherwise.
   */
  async putTree(caller: string, tree: string, index: Uint8Array): Promise<UploadedTree> {
    const pieces = decodeManifestIndex(tree, index, this.#limits());
    return this.#turn(caller, async (uploads) => {
      const manifest = await this.#sentManifest(uploads, tree, index, pieces);
      await this.#o.store.pin(uploads.holder, [tree]);
      await this.#o.store.putTree(tree, index);
      uploads.trees.delete(tree);
      uploads.trees.set(tree, pieces);
      for (const old of [...uploads.trees.keys()].slice(0, -MAX_TREES_PER_CALLER)) uploads.trees.delete(old);
      return { tree, files: manifest.entries.length, bytes: totalSize(manifest) };
    });
  }

  /**
   * Make tree `tree`, put by `caller`, a submission of this node; answers the
   * spec its request carries. What the caller holds uploaded becomes that
   * tree alone (held by the submission too, it no longer counts against the
   * caller's budget), the base of its next upload.
   */
  async submit(caller: string, tree: string, artifacts?: readonly string[]): Promise<WorkspaceSpec> {
    return this.#turn(caller, async (uploads) => {
      const pieces = uploads.trees.get(tree);
      const index = pieces === undefined ? undefined : await this.#o.store.getTree(tree);
      if (pieces === undefined || index === undefined) throw new InvalidInputError(`tree ${tree} was not uploaded by this session: PUT /v1/trees/${tree} first`, "tree");
      // Joined again rather than kept since the put: a session's four trees would hold four manifests, each up to the manifest limit, in memory.
      const manifest = await this.#sentManifest(uploads, tree, index, pieces);
      const spec = await this.#o.adopt(tree, manifest, pieces, artifacts, uploaderOf(uploads.holder));
      await this.#o.store.unpin(uploads.holder);
      await this.#o.store.pin(uploads.holder, [...blobsOf(manifest), ...pieces]);
      uploads.trees.clear();
      uploads.bytes = 0;
      return spec;
    });
  }

  /** The manifest of `tree`, every piece and blob of which `uploads`' caller sent; refused, naming the piece or the entry, otherwise. */
  async #sentManifest(uploads: CallerUploads, tree: string, index: Uint8Array, pieces: readonly string[]): Promise<Manifest> {
    const limits = this.#limits();
    const held = this.#o.store.pinnedBy(uploads.holder);
    const sent = this.#sentBy(uploads);
    const { pieces: read } = await readPiecesWithin(
      pieces,
      async (digest, k) => {
        const bytes = held.has(digest) ? await this.#o.store.read(digest) : undefined;
        if (bytes === undefined) throw new InvalidInputError(`piece ${digest} of the manifest was not sent: POST it to /v1/blobs first`, `index.pieces[${k}]`);
        return bytes;
      },
      limits.maxManifestBytes,
      (k) => new InvalidInputError(`the pieces exceed the manifest limit of ${limits.maxManifestBytes} bytes`, `index.pieces[${k}]`),
    );
    const manifest = joinManifest(tree, index, read as Uint8Array[], limits);
    for (const [i, entry] of manifest.entries.entries()) {
      if (entry.kind !== "file") continue;
      const absent = entry.chunks.find((digest) => !sent(digest));
      if (absent !== undefined) throw new InvalidInputError(`blob ${absent} of ${JSON.stringify(entry.path)} was not sent: POST it to /v1/blobs first`, `entries[${i}]`);
    }
    return manifest;
  }

  /** Drop the uploads of callers idle longer than {@link CodeUploadsOptions.idleMs}; answers how many. */
  async sweep(): Promise<number> {
    let dropped = 0;
    for (const [caller, uploads] of [...this.#callers]) {
      // Decided for each as it comes: a caller may have called while an earlier one's uploads were being unpinned.
      if (this.#now() - uploads.touched <= (this.#o.idleMs ?? 3600_000) || this.#turns.has(caller)) continue;
      this.#callers.delete(caller);
      await this.#o.store.unpin(uploads.holder);
      dropped++;
    }
    return dropped;
  }

  #turn<T>(caller: string, work: (uploads: CallerUploads) => Promise<T>): Promise<T> {
    return this.#turns.run(caller, async () => {
      let uploads = this.#callers.get(caller);
      if (uploads === undefined) {
        // Hashed: a holder name is stored as a key, and a caller's name is whatever its session's is.
        uploads = { holder: `${UPLOAD_HOLDER_PREFIX}${createHash("sha256").update(caller).digest("hex").slice(0, 32)}`, bytes: 0, trees: new Map(), touched: 0 };
        this.#callers.set(caller, uploads);
      }
      uploads.touched = this.#now();
      return work(uploads);
    });
  }

  /** Whether `uploads`' caller sent the blob `digest`: pinned for it, and held (a pin may come before its write). */
  #sentBy(uploads: CallerUploads): (digest: string) => boolean {
    const held = this.#o.store.pinnedBy(uploads.holder);
    return (digest) => held.has(digest) && this.#o.store.has(digest);
  }

  /**
   * What the store keeps for submissions of uploaded trees (`uploader`'s alone, when given), as the budgets count it;
   * 0 when the whole store could not take `pending` over `limit`, which is cheap to tell, while the count is not.
   */
  #submittedWithin(limit: number, pending: number, uploader?: string): number {
    const usage = this.#o.store.usage();
    if (pending + counted(usage.bytes, usage.entries) <= limit) return 0;
    const kept = this.#o.submitted?.(uploader);
    return kept === undefined ? 0 : counted(kept.bytes, kept.blobs);
  }

  #limits(): ManifestLimits {
    return this.#o.limits ?? DEFAULT_MANIFEST_LIMITS;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}
