/** Where blob bytes can be read from, by digest (lowercase hex SHA-256 of the bytes). */
export interface BlobSource { read(digest: string): Promise<Uint8Array | undefined>; has(digest: string): boolean | Promise<boolean> }
