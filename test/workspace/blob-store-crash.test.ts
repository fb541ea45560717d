import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { openBlobStore } from "../../src/workspace/blob-store.js";
import { killAfterPrinted } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

const CHILD = fileURLToPath(new URL("./blob-store-child.mjs", import.meta.url));
const PACK_CHILD = fileURLToPath(new URL("./blob-packs-child.mjs", import.meta.url));
const PACK_FULL_CHILD = fileURLToPath(new URL("./blob-packs-full-child.mjs", import.meta.url));
const BUILT = fileURLToPath(new URL("../../dist/src/workspace/blob-store.js", import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs the writer `script` until `due` says so of what it printed, then SIGKILLs it `extraMs` later at whatever await it is in. */
function runAndKill(dir: string, sync: boolean, due: (lines: string[]) => boolean, extraMs: number, script = CHILD): Promise<string[]> {
  return killAfterPrinted(script, [dir, sync ? "sync" : "nosync"], due, extraMs);
}

/** A directory for a store the child processes (which load the built code) write to. */
function storeDir(prefix: string): { path: string } {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npm run build\` first (npm test does)`);
  const dir = tempDir(prefix);
  cleanups.push(() => dir.remove());
  return dir;
}

it("a writer SIGKILLed mid-write leaves no corrupt blob, no half pin and a resumable partial", { timeout: 60_000 }, async () => {
  const dir = storeDir("cc-blob-crash-");
  const printed: string[] = [];
  /** Blobs whose put resolved in a run with fsync: they must all be there. */
  const synced: string[] = [];
  // Killed at different moments, with and without fsync; most kills land while dozens of writes are under way.
  for (const [i, extraMs] of [40, 95, 150, 230, 310, 400].entries()) {
    const lines = await runAndKill(dir.path, i % 2 === 0, (printed) => printed.length >= 1, extraMs);
    printed.push(...lines);
    if (i % 2 === 0) synced.push(...lines.filter((l) => l.startsWith("put ")).map((l) => l.slice(4)));
  }

  const store = await openBlobStore({ dir: dir.path, quotaBytes: 1024 * 1024 * 1024 });
  cleanups.push(() => store.close());
  for (const sub of readdirSync(dir.path).filter((d) => /^[0-9a-f]{2}$/.test(d))) {
    for (const rest of readdirSync(join(dir.path, sub))) {
      expect(createHash("sha256").update(readFileSync(join(dir.path, sub, rest))).digest("hex")).toBe(sub + rest);
    }
  }
  expect(readdirSync(join(dir.path, ".tmp"))).toEqual([]);
  const puts = printed.filter((l) => l.startsWith("put ")).map((l) => l.slice(4));
  expect(puts.length).toBeGreaterThanOrEqual(6 * 64);
  // Most blobs are under 64 KiB and went into packs; without fsync a put resolved just before the kill may be absent, never wrong.
  for (const digest of synced) expect(store.has(digest)).toBe(true);
  for (const digest of puts) {
    if (!store.has(digest)) continue;
    const bytes = store.readSync(digest);
    expect(bytes && createHash("sha256").update(bytes).digest("hex")).toBe(digest);
  }
  // Each holder pinned 65 digests in one call: all of them or none survive.
  for (const line of printed.filter((l) => l.startsWith("pinning "))) expect([0, 65]).toContain(store.pinnedBy(line.slice(8)).size);
  for (const line of printed.filter((l) => l.startsWith("pinned "))) expect(store.pinnedBy(line.slice(7)).size).toBe(65);
  // A partial left behind continues where the file ends.
  for (const line of printed.filter((l) => l.startsWith("partial "))) {
    const digest = line.slice(8);
    expect(await store.partialOffset(digest)).toBe(readFileSync(join(dir.path, ".partial", digest)).byteLength);
  }
});

it("a store SIGKILLed while it appends to packs or compacts them reopens consistent: every blob held reads back whole", { timeout: 90_000 }, async () => {
  const dir = storeDir("cc-pack-crash-");
  const printed: string[] = [];
  /** Holders whose pin resolved in a run with fsync. */
  const syncedHolders: string[] = [];
  // Kills a few milliseconds after a compaction began (the child prints "gc" before it), and at other moments, with and without fsync.
  const kills: Array<[(lines: string[]) => boolean, number]> = [
    [(l) => l.filter((x) => x === "gc").length >= 2, 0],
    [(l) => l.filter((x) => x === "gc").length >= 2, 2],
    [(l) => l.filter((x) => x === "gc").length >= 3, 5],
    [(l) => l.filter((x) => x === "gc").length >= 2, 10],
    [(l) => l.length >= 1, 60],
    [(l) => l.length >= 1, 150],
  ];
  for (const [i, [due, extraMs]] of kills.entries()) {
    const sync = i % 2 === 0;
    const lines = await runAndKill(dir.path, sync, due, extraMs, PACK_CHILD);
    printed.push(...lines);
    if (sync) syncedHolders.push(...lines.filter((l) => l.startsWith("pinned ")).map((l) => l.slice(7)));
  }
  expect(printed.filter((l) => l.startsWith("gc ")).length).toBeGreaterThan(0);

  const store = await openBlobStore({ dir: dir.path, quotaBytes: 1024 * 1024 * 1024 });
  cleanups.push(() => store.close());
  const offered = new Map<string, number>();
  for (const l of printed.filter((x) => x.startsWith("putting "))) {
    const [, digest, size] = l.split(" ");
    offered.set(digest!, Number(size));
  }
  let heldBytes = 0;
  for (const [digest, size] of offered) {
    if (!store.has(digest)) continue;
    const bytes = store.readSync(digest);
    expect(bytes && createHash("sha256").update(bytes).digest("hex"), `blob ${digest}`).toBe(digest);
    heldBytes += size;
  }
  // Nothing held that no writer offered, and no blob counted twice.
  expect(store.usage().bytes).toBe(heldBytes);
  // A pin that survived keeps its blobs: with fsync each was durable before the pin was made.
  for (const holder of syncedHolders) for (const digest of store.pinnedBy(holder)) expect(store.has(digest), `${holder} ${digest}`).toBe(true);
  for (const holder of store.holders()) await store.unpin(holder);
  await store.gc({ downToBytes: 0 });
  expect(store.usage()).toEqual({ bytes: 0, entries: 0 });
  expect(readdirSync(join(dir.path, ".packs"))).toEqual([]);
});

it("a pack write the file system refuses loses the blobs it carried, and only them: the store counts, reads and reopens without them", { timeout: 60_000 }, async () => {
  const dir = storeDir("cc-pack-full-");
  // Each file may grow to 2 MiB: the first pack fills up after about 40 of the child's 50 KB blobs.
  const out = await new Promise<string>((resolve, reject) => {
    execFile("prlimit", [`--fsize=${2 * 1024 * 1024}`, process.execPath, PACK_FULL_CHILD, dir.path], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const seen = JSON.parse(out) as { given: string[]; held: string[]; readable: string[]; usage: { bytes: number; entries: number }; afterDigest: string; afterRead: boolean };
  expect(seen.held.length).toBeGreaterThan(0);
  expect(seen.held.length).toBeLessThan(seen.given.length);
  expect(seen.readable).toEqual(seen.held);
  expect(seen.usage).toEqual({ bytes: seen.held.length * 50_000 + 1000, entries: seen.held.length + 1 });
  expect(seen.afterRead).toBe(true);

  const store = await openBlobStore({ dir: dir.path, quotaBytes: 1024 * 1024 * 1024 });
  cleanups.push(() => store.close());
  for (const digest of seen.given) {
    const bytes = store.readSync(digest);
    if (bytes === undefined) continue;
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(digest);
    expect(seen.held).toContain(digest);
  }
  expect(store.has(seen.afterDigest)).toBe(true);
});
