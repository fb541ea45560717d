// A blob store writer for the SIGKILL test: puts blobs, appends partials and pins
// holders in a loop, printing each step once it resolved (durable), until killed.
import { createHash, randomBytes, randomInt } from "node:crypto";
import { openBlobStore } from "../../dist/src/workspace/blob-store.js";

const [dir] = process.argv.slice(2);
const store = await openBlobStore({ dir, quotaBytes: 64 * 1024 * 1024 });
for (let i = 0; ; i++) {
  const digest = await store.put(randomBytes(randomInt(1, 1024 * 1024)));
  process.stdout.write(`put ${digest}\n`);
  const whole = randomBytes(randomInt(2, 512 * 1024));
  const partial = createHash("sha256").update(whole).digest("hex");
  await store.appendPartial(partial, 0, whole.subarray(0, whole.length >> 1));
  process.stdout.write(`partial ${partial}\n`);
  const pinned = Array.from({ length: 64 }, () => randomBytes(32).toString("hex"));
  const holder = `holder-${process.pid}-${i}`;
  process.stdout.write(`pinning ${holder}\n`);
  await store.pin(holder, [digest, ...pinned]);
  process.stdout.write(`pinned ${holder}\n`);
}
