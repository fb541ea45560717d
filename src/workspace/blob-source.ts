/**
 * Somewhere blobs can be read from by digest: a submitter's working tree, a
 * blob store, a peer. A source returns the bytes it holds for a digest or
 * undefined when it cannot (any longer) produce them; callers still check
 * what they get against the digest before using it.
 */
export interface BlobSource {
  /** The blob's bytes, or undefined when this source does not have them (or they changed). */
  read(digest: string): Promise<Uint8Array | undefined>;
  /** Whether this source expects to be able to read the blob. */
  has(digest: string): boolean | Promise<boolean>;
}
