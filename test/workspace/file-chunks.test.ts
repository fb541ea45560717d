import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashFileChunks, hashFileChunksSync } from "../../src/workspace/file-chunks.js";
import { HashThread } from "../../src/workspace/hash-thread.js";
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

describe("HashThread", () => {
  it("answers each file as hashFileChunksSync does, in order, and a file it cannot hash as that file's error", async () => {
    const d = dir();
    const scratch = Buffer.alloc(CHUNK_SIZE);
    const sizes = [["empty", 0], ["small", 5000], ["two-and-a-bit", 2 * CHUNK_SIZE + 3]] as const;
    for (const [name, size] of sizes) writeFileSync(join(d, name), randomBytes(size));
    execFileSync("mkfifo", [join(d, "fifo")]);
    symlinkSync("small", join(d, "link"));
    const thread = new HashThread(CHUNK_SIZE);
    try {
      const before = Date.now();
      const answers = await thread.hash([...sizes.map(([name]) => join(d, name)), join(d, "fifo"), join(d, "gone"), join(d, "link")]);
      expect(answers).toHaveLength(6);
      for (const [i, [name]] of sizes.entries()) {
        const answer = answers[i]!;
        if (answer instanceof Error) throw answer;
        const sync = hashFileChunksSync(join(d, name), scratch);
        expect(answer.chunks, name).toEqual(sync.chunks);
        expect(answer.stat).toEqual({ size: sync.stat.size, mode: sync.stat.mode, ino: sync.stat.ino, dev: sync.stat.dev, mtimeMs: sync.stat.mtimeMs, ctimeMs: sync.stat.ctimeMs });
        expect(answer.statAtMs).toBeGreaterThanOrEqual(before);
      }
      expect(String(answers[3])).toMatch(/no longer a regular file/);
      // Asked for, a file's git blob id too, as git names its content; only where asked.
      const withOid = await thread.hash([[join(d, "two-and-a-bit"), "sha1"], [join(d, "empty"), "sha256"], join(d, "small")]);
      const oid = (path: string, algorithm: "sha1" | "sha256"): string | undefined => hashFileChunksSync(join(d, path), scratch, algorithm).gitOid;
      expect(withOid.map((a) => (a instanceof Error ? a : a.gitOid))).toEqual([oid("two-and-a-bit", "sha1"), oid("empty", "sha256"), undefined]);
      expect(oid("two-and-a-bit", "sha1")).toBe(execFileSync("git", ["hash-object", join(d, "two-and-a-bit")], { encoding: "utf8" }).trim());
      expect(answers[4]).toMatchObject({ code: "ENOENT" });
      // Never through a link: the link is refused, not the file it points at hashed.
      expect(answers[5]).toMatchObject({ code: "ELOOP" });
      expect(thread.queued).toBe(0);
    } finally {
      await thread.close();
    }
  });

  it("rejects the slices it has not answered when it is closed or its thread ends, and takes no more", async () => {
    const d = dir();
    const paths = Array.from({ length: 200 }, (_, i) => {
      writeFileSync(join(d, `f${i}`), randomBytes(64 * 1024));
      return join(d, `f${i}`);
    });
    const thread = new HashThread(CHUNK_SIZE);
    // Their refusals are awaited from before the close, as a caller handles them.
    const first = expect(thread.hash(paths)).rejects.toThrow(/closed/);
    const second = expect(thread.hash(paths)).rejects.toThrow(/closed/);
    await thread.close();
    await first;
    await second;
    expect(thread.queued).toBe(Number.POSITIVE_INFINITY);
    await expect(thread.hash(paths)).rejects.toThrow(/failed/);
  });
});
