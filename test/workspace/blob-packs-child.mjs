// A blob store writer for the pack SIGKILL test: puts 200 small blobs at a time
// (they go into packs), pins a quarter of them, unpins the previous round's
// holder and collects everything unpinned, which rewrites the packs. Each step
// is printed once it resolved; "putting" lines come first, so the test knows
// every blob the store may hold.
import { createHash, randomBytes, randomInt } from "node:crypto";
import { openBlobStore } from "../../dist/src/workspace/blob-store.js";

const [dir, sync] = process.argv.slice(2);
const store = await openBlobStore({ dir, quotaBytes: 1024 * 1024 * 1024, fsync: sync === "sync" });
let previous;
for (let i = 0; ; i++) {
  const blobs = Array.from({ length: 200 }, () => randomBytes(randomInt(1, 60_000)));
  for (const b of blobs) process.stdout.write(`putting ${createHash("sha256").update(b).digest("hex")} ${b.byteLength}\n`);
  const digests = await Promise.all(blobs.map((b) => store.put(b)));
  for (const digest of digests) process.stdout.write(`put ${digest}\n`);
  const holder = `keep-${process.pid}-${i}`;
  await store.pin(holder, digests.filter((_, k) => k % 4 === 0));
  process.stdout.write(`pinned ${holder}\n`);
  if (previous !== undefined) await store.unpin(previous);
  previous = holder;
  process.stdout.write("gc\n");
  const { removed } = await store.gc({ downToBytes: 0 });
  process.stdout.write(`gc ${removed}\n`);
}
