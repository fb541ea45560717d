import { lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileWriter } from "../../src/workspace/file-writer.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(): { dir: string; writer: FileWriter } {
  const dir = tempDir("cc-file-writer-");
  const writer = new FileWriter();
  cleanups.push(() => dir.remove(), () => writer.close());
  return { dir: dir.path, writer };
}

describe("FileWriter.create", () => {
  it("writes exactly the chunks given, even views into larger buffers, which stay the caller's", async () => {
    const { dir, writer } = setup();
    const big = Buffer.from("0123456789abcdefghij");
    const chunks = [big.subarray(2, 5), big.subarray(10, 12), new Uint8Array(0), big.subarray(19)];
    const stamp = await writer.create(join(dir, "f"), 0o644, chunks);
    expect(readFileSync(join(dir, "f"), "latin1")).toBe("234abj");
    // Handed over to the worker is a copy: the caller's buffer is neither detached nor changed.
    expect(big.byteLength).toBe(20);
    expect(big.toString("latin1")).toBe("0123456789abcdefghij");
    const st = statSync(join(dir, "f"));
    expect(stamp).toEqual({ size: 6, mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
  });

  it("writes a file larger than one job a chunk at a time, whole and in order, and stamps it as finished", async () => {
    const { dir, writer } = setup();
    const chunks = Array.from({ length: 11 }, (_, i) => Buffer.alloc(i === 10 ? 12_345 : 1024 * 1024, i + 1));
    const stamp = await writer.create(join(dir, "big"), 0o755, chunks);
    expect(readFileSync(join(dir, "big")).equals(Buffer.concat(chunks))).toBe(true);
    const st = statSync(join(dir, "big"));
    expect(stamp).toEqual({ size: 10 * 1024 * 1024 + 12_345, mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
    expect(st.mode & 0o777).toBe(0o755);
  });

  it("sets the mode asked for whatever the umask", async () => {
    const { dir, writer } = setup();
    const before = process.umask(0o077);
    try {
      const stamp = await writer.create(join(dir, "run.sh"), 0o755, [Buffer.from("#!/bin/sh\n")]);
      expect(stamp.mode & 0o777).toBe(0o755);
      expect(statSync(join(dir, "run.sh")).mode & 0o777).toBe(0o755);
    } finally {
      process.umask(before);
    }
  });

  it("refuses a path that exists, or is a link, writing nothing through it", async () => {
    const { dir, writer } = setup();
    writeFileSync(join(dir, "there"), "kept");
    writeFileSync(join(dir, "target"), "kept");
    symlinkSync(join(dir, "target"), join(dir, "link"));
    await expect(writer.create(join(dir, "there"), 0o644, [Buffer.from("x")])).rejects.toMatchObject({ code: "EEXIST" });
    await expect(writer.create(join(dir, "link"), 0o644, [Buffer.from("x")])).rejects.toMatchObject({ code: "EEXIST" });
    await expect(writer.create(join(dir, "missing", "f"), 0o644, [Buffer.from("x")])).rejects.toMatchObject({ code: "ENOENT" });
    expect(readFileSync(join(dir, "there"), "utf8")).toBe("kept");
    expect(readFileSync(join(dir, "target"), "utf8")).toBe("kept");
    expect(lstatSync(join(dir, "link")).isSymbolicLink()).toBe(true);
  });
});
