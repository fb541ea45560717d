export type { BlobSource } from "./blob-source.js";
export {
  type Manifest,
  type ManifestEntry,
  type ManifestFileEntry,
  type ManifestSymlinkEntry,
  type ManifestLimits,
  CHUNK_SIZE,
  DEFAULT_MANIFEST_LIMITS,
  blobDigest,
  comparePaths,
  pathProblem,
  symlinkTargetProblem,
  validateManifest,
  buildManifest,
  encodeManifest,
  decodeManifest,
  blobsOf,
  totalSize,
} from "./manifest.js";
export {
  type ManifestPiece,
  type PiecedManifest,
  CUT_EVERY,
  PIECE_TARGET_BYTES,
  MAX_PIECE_BYTES,
  splitManifest,
  decodeManifestIndex,
  joinManifest,
} from "./manifest-pieces.js";
export { type Snapshot, type SnapshotOptions, type SnapshotStats, snapshotDirectory } from "./snapshot.js";
export { SnapshotMemory } from "./snapshot-memory.js";
export { type SkippedPath, IGNORE_FILE } from "./tree-listing.js";
export { type FileStamp, type MaterializedTree, type MaterializeOptions, materializeTree } from "./materialize.js";
