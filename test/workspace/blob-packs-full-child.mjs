// A blob store on a file system that takes no more bytes: run under
// `prlimit --fsize`, so a pack's write fails (EFBIG) partway through. Puts
// small blobs (they go into packs) until a write has failed, then prints, as
// one JSON line, what the store says of every blob it was given, and puts and
// reads back one more in a fresh pack.
import { createHash, randomBytes } from "node:crypto";
import { openBlobStore } from "../../dist/src/workspace/blob-store.js";

// Without a handler the kernel's SIGXFSZ ends the process; with one, the write fails with EFBIG.
process.on("SIGXFSZ", () => undefined);
const [dir] = process.argv.slice(2);
const store = await openBlobStore({ dir, quotaBytes: 1024 * 1024 * 1024, fsync: false });
const sha = (b) => createHash("sha256").update(b).digest("hex");
const given = [];
for (let round = 0; round < 40 && given.every((d) => store.has(d)); round++) {
  const blobs = Array.from({ length: 20 }, () => randomBytes(50_000));
  given.push(...(await Promise.all(blobs.map((b) => store.put(b)))));
  // Appends are written at the loop's next check phase.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}
const held = given.filter((d) => store.has(d));
const readable = held.filter((d) => { const b = store.readSync(d); return b !== undefined && sha(b) === d; });
const after = randomBytes(1000);
const afterDigest = await store.put(after);
const afterBack = store.readSync(afterDigest);
process.stdout.write(JSON.stringify({ given, held, readable, usage: store.usage(), afterDigest, afterRead: afterBack !== undefined && sha(afterBack) === afterDigest }) + "\n");
await store.close().catch(() => undefined);
