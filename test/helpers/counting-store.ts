import type { BlobStore } from "../../src/workspace/blob-store.js";

/** `store` as it is, counting the bytes its reads answer: what a check made before or after reading cost in memory. */
export function countingReads(store: BlobStore): { store: BlobStore; readBytes: () => number } {
  let readBytes = 0;
  const counted = new Proxy(store, {
    get: (target, key) =>
      key === "read"
        ? async (digest: string) => {
            const bytes = await target.read(digest);
            readBytes += bytes?.byteLength ?? 0;
            return bytes;
          }
        : Reflect.get(target, key),
  });
  return { store: counted, readBytes: () => readBytes };
}
