import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { openBlobStore } from "../../src/workspace/blob-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const CHILD = fileURLToPath(new URL("./blob-store-child.mjs", import.meta.url));
const BUILT = fileURLToPath(new URL("../../dist/src/workspace/blob-store.js", import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs the writer until it has printed `lines` steps, then SIGKILLs it at whatever await it is in. */
function runAndKill(dir: string, sync: boolean, lines: number, extraMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, sync ? "sync" : "nosync"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    let killing = false;
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!killing && out.split("\n").length > lines) {
        killing = true;
        setTimeout(() => child.kill("SIGKILL"), extraMs);
      }
    });
    child.on("exit", (code, signal) => {
      if (signal !== "SIGKILL") return reject(new Error(`writer exited with ${code}: ${stderr}`));
      // A line cut by the kill is dropped: only whole lines report a finished step.
      resolve(out.split("\n").slice(0, -1));
    });
  });
}

it("a writer SIGKILLed mid-write leaves no corrupt blob, no half pin and a resumable partial", { timeout: 60_000 }, async () => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npm run build\` first (npm test does)`);
  const dir = tempDir("cc-blob-crash-");
  cleanups.push(() => dir.remove());
  const printed: string[] = [];
  // Killed at different moments, with and without fsync; most kills land while dozens of writes are under way.
  for (const [i, extraMs] of [40, 95, 150, 230, 310, 400].entries()) printed.push(...(await runAndKill(dir.path, i % 2 === 0, 1, extraMs)));

  const store = await openBlobStore({ dir: dir.path, quotaBytes: 1024 * 1024 * 1024 });
  cleanups.push(() => store.close());
  let blobs = 0;
  for (const sub of readdirSync(dir.path).filter((d) => /^[0-9a-f]{2}$/.test(d))) {
    for (const rest of readdirSync(join(dir.path, sub))) {
      expect(createHash("sha256").update(readFileSync(join(dir.path, sub, rest))).digest("hex")).toBe(sub + rest);
      blobs++;
    }
  }
  expect(readdirSync(join(dir.path, ".tmp"))).toEqual([]);
  const puts = printed.filter((l) => l.startsWith("put ")).map((l) => l.slice(4));
  expect(puts.length).toBeGreaterThanOrEqual(6 * 64);
  for (const digest of puts) expect(store.has(digest)).toBe(true);
  expect(blobs).toBeGreaterThanOrEqual(puts.length);
  // Each holder pinned 65 digests in one call: all of them or none survive.
  for (const line of printed.filter((l) => l.startsWith("pinning "))) expect([0, 65]).toContain(store.pinnedBy(line.slice(8)).size);
  for (const line of printed.filter((l) => l.startsWith("pinned "))) expect(store.pinnedBy(line.slice(7)).size).toBe(65);
  // A partial left behind continues where the file ends.
  for (const line of printed.filter((l) => l.startsWith("partial "))) {
    const digest = line.slice(8);
    expect(await store.partialOffset(digest)).toBe(readFileSync(join(dir.path, ".partial", digest)).byteLength);
  }
});
