// A blob store writer for the SIGKILL test: puts 64 blobs at a time (their opens,
// writes and renames queue in the thread pool, so at most moments some file is
// created and not yet written: a kill then lands inside writes), appends
// partials and pins holders in a loop, printing each step once it resolved.
import { createHash, randomBytes, randomInt } from "node:crypto";
import { openBlobStore } from "../../dist/src/workspace/blob-store.js";

const [dir, sync] = process.argv.slice(2);
const store = await openBlobStore({ dir, quotaBytes: 1024 * 1024 * 1024, fsync: sync === "sync" });
const base = randomBytes(64 * 1024);
for (let i = 0; ; i++) {
  const blobs = Array.from({ length: 64 }, (_, k) => {
    const b = Buffer.from(base);
    b.writeUInt32BE(process.pid, 0);
    b.writeUInt32BE(i * 64 + k, 4);
    return b.subarray(0, 8 + randomInt(1, base.length - 8));
  });
  const digests = await Promise.all(blobs.map((b) => store.put(b)));
  for (const digest of digests) process.stdout.write(`put ${digest}\n`);
  const whole = randomBytes(randomInt(2, 512 * 1024));
  const partial = createHash("sha256").update(whole).digest("hex");
  await store.appendPartial(partial, 0, whole.subarray(0, whole.length >> 1));
  process.stdout.write(`partial ${partial}\n`);
  const pinned = Array.from({ length: 64 }, () => randomBytes(32).toString("hex"));
  const holder = `holder-${process.pid}-${i}`;
  process.stdout.write(`pinning ${holder}\n`);
  await store.pin(holder, [digests[0], ...pinned]);
  process.stdout.write(`pinned ${holder}\n`);
}
