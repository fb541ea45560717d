/**
 * Where blob bytes can be read from, by digest (lowercase hex SHA-256 of the
 * bytes). `read` checks what it read against the digest and answers undefined
 * rather than other bytes, so callers need not hash again.
 */
export interface BlobSource { read(digest: string): Promise<Uint8Array | undefined>; has(digest: string): boolean | Promise<boolean> }
