import type { PieceRuns } from "./manifest-pieces.js";
import type { KeptStatCache } from "./stat-cache.js";
import type { KeptListing } from "./tree-listing.js";

/** What the last snapshot of one directory left for the next. */
export class DirectoryMemory implements KeptStatCache, KeptListing {
  /** The stat cache's records, with the signature of the file they match. */
  cache: KeptStatCache["cache"];
  /** The last manifest's pieces, with the runs of entries they hold. */
  runs: PieceRuns | undefined;
  /** Git's last listing of the directory, as printed and as parsed. */
  listing: KeptListing["listing"];
}

/**
 * What a long-lived process (a node) keeps in memory between snapshots of
 * the same directories, so that a snapshot of a tree that changed little
 * costs little more than git's own look at it: git's last listing as read
 * (the same bytes from git are not parsed again), the stat cache's records as
 * last read or saved (not read and parsed again while the file keeps the
 * signature it had then), and the last manifest's pieces with the entries
 * they hold (a piece whose entries come back unchanged is taken as it is,
 * not encoded and hashed again). Holds the {@link maxDirectories} directories
 * snapshotted last: about 10 MB for a tree of 20k files.
 */
export class SnapshotMemory {
  readonly #directories = new Map<string, DirectoryMemory>();

  constructor(readonly maxDirectories = 4) {}

  /** The memory of `root`'s snapshots with the stat cache `cacheFile`, made the most recent. */
  of(root: string, cacheFile: string | undefined): DirectoryMemory {
    const key = `${root}\0${cacheFile ?? ""}`;
    const memory = this.#directories.get(key) ?? new DirectoryMemory();
    this.#directories.delete(key);
    this.#directories.set(key, memory);
    for (const oldest of this.#directories.keys()) {
      if (this.#directories.size <= this.maxDirectories) break;
      this.#directories.delete(oldest);
    }
    return memory;
  }
}
