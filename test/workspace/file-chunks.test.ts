import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashFileChunks, hashFileChunksSync } from "../../src/workspace/file-chunks.js";
import { CHUNK_SIZE } from "../../src/workspace/manifest.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = tempDir("cc-file-chunks-");
  cleanups.push(d.remove);
  return d.path;
}

describe("hashFileChunksSync", () => {
  it("gives the chunks and stat the thread-pool version gives, for empty, small and multi-chunk files", async () => {
    const d = dir();
    const scratch = Buffer.alloc(CHUNK_SIZE);
    for (const [name, size] of [["empty", 0], ["small", 5000], ["two-and-a-bit", 2 * CHUNK_SIZE + 3]] as const) {
      writeFileSync(join(d, name), randomBytes(size));
      const sync = hashFileChunksSync(join(d, name), scratch);
      const async = await hashFileChunks(join(d, name));
      expect(sync.chunks, name).toEqual(async.chunks);
      expect(sync.chunks).toHaveLength(Math.ceil(size / CHUNK_SIZE));
      expect(sync.stat.ino).toBe(async.stat.ino);
    }
  });

  it("refuses a fifo put where a file was listed, without waiting for a writer", () => {
    const d = dir();
    execFileSync("mkfifo", [join(d, "was-a-file")]);
    expect(() => hashFileChunksSync(join(d, "was-a-file"), Buffer.alloc(CHUNK_SIZE))).toThrow(/no longer a regular file/);
  });
});
